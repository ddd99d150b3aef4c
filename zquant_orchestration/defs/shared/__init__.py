"""What the domain packages (market, finance, derived, script_tasks) share: the trading-day
partitions and the stock codes a run may name. Domains import this, never each other."""

"""zquant-orchestration: a Dagster code location that keeps an A-share warehouse complete."""

import warnings

import dagster as dg

# BackfillPolicy and asset checks on partitioned assets are beta in Dagster 1.13; we rely
# on them knowingly, and the warnings would bury real ones in every log.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

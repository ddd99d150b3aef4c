"""Joins the two upstream tasks' results of one day into a line of text."""

from dagster_pipes import open_dagster_pipes

with open_dagster_pipes() as pipes:
    pipes.log.info(f"report for {pipes.partition_key}: breadth and momentum are both in")
    pipes.report_asset_materialization(metadata={"day": pipes.partition_key})

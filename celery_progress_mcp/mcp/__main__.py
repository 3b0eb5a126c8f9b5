"""``python -m celery_progress_mcp.mcp -A MODULE:APP --tool TASK ...``."""

from ..cli.mcp import mcp_command

if __name__ == "__main__":
    mcp_command(prog_name="python -m celery_progress_mcp.mcp")

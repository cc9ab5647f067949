"""Web page for similarity search: ``audiofcn serve --db catalog/`` (FastAPI + uvicorn)."""

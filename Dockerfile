# The Todo API image (README "Deploy"):
#   docker build -t todo-api .
#   docker run -p 8000:8000 --env-file .env todo-api
# Built the way uv's Docker guide does it: the dependencies from uv.lock in a layer of their own
# (a source change rebuilds in seconds), compiled to bytecode, no dev dependencies, and a final
# stage without uv. Needs BuildKit (Docker's default builder) for the cache and bind mounts.

FROM python:3.13-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.13
WORKDIR /app
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --locked --no-dev --no-install-project
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev \
 && python -m compileall -q -j 0 -x '/app/\.venv/' /app

FROM python:3.13-slim-bookworm
# uid 1000, as Hugging Face Spaces runs containers; /data is where the embedded SQLite database
# lives: mount a volume there to keep it (`-v todo-data:/data`).
RUN useradd --uid 1000 --user-group --create-home app \
 && mkdir /data \
 && chown app:app /data
# The code stays root's: the server cannot rewrite it.
COPY --from=build /app /app
WORKDIR /app
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    DATABASE_URL=sqlite+aiosqlite:////data/todo.db
USER 1000:1000
EXPOSE 8000
# Checks the configuration, migrates PostgreSQL to head (MIGRATE_ON_START), then execs uvicorn
# on 0.0.0.0:${PORT:-8000} as this PID 1 (the server command is deploy/start.py's).
CMD ["python", "-m", "deploy.start"]

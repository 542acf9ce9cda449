# chatsessions API. Build: docker build -t chatsessions . ; run it with a Redis URL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CHATSESSIONS_HOST=0.0.0.0 CHATSESSIONS_PORT=8000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
# The same install the Makefile does, without the test tools.
RUN python -m pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /app chatsessions \
    && mkdir -p /app/data && chown chatsessions /app/data

USER chatsessions
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
ENTRYPOINT ["chatsessions"]
CMD ["serve"]

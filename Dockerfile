FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=9090

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt \
    && useradd --create-home --uid 10001 zto

COPY --chown=zto:zto zto ./zto
COPY --chown=zto:zto templates ./templates
COPY --chown=zto:zto wsgi.py gunicorn.conf.py ./

USER zto
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"9090\")}/healthz', timeout=4)"

# Set DEFAULT_KEY (docker run -e DEFAULT_KEY=...): the published default, sk-your-key,
# is accepted only from inside the container, so with it no client is served.
CMD ["gunicorn", "-c", "gunicorn.conf.py"]

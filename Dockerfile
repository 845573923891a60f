# flask-chat images. Two targets from one file:
#   app  (default): the gunicorn/gevent worker; migrations run at start, then gunicorn
#   web:            nginx with the project's config (upstream app:8000) and the static files
#
#   docker build -t flask-chat .              docker build --target web -t flask-chat-web .
#
# Base images are build args whose defaults are the official images. Without a registry
# (CI here) they point at local stand-ins, and the Python and npm packages come from
# deploy/docker/wheels and deploy/docker/npm-cache, filled on the host by
# deploy/docker/ci-prepare.sh. When those folders are empty the build uses the internet.
ARG PYTHON_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:20-slim
ARG NGINX_IMAGE=nginx:1.27

# ---- browser assets: socket.io-client from the npm lock file -> app/static/vendor
FROM ${NODE_IMAGE} AS assets
WORKDIR /src
COPY package.json package-lock.json ./
COPY deploy/docker/npm-cache/ /npm-cache/
RUN if [ -d /npm-cache/_cacache ]; then \
        npm ci --offline --cache /npm-cache --no-audit --no-fund --loglevel=error; \
    else \
        npm ci --no-audit --no-fund --loglevel=error; \
    fi
COPY scripts/build-assets.mjs scripts/
RUN npm run --silent build

# ---- Python: the dependencies, then the project, into /opt/venv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY deploy/docker/wheels/ /wheels/
COPY pyproject.toml ./
# dependencies first (their own layer, rebuilt only when pyproject.toml changes)
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        >/tmp/requirements.txt \
    && if ls /wheels/*.whl >/dev/null 2>&1; then set -- --no-index --find-links /wheels; fi \
    && pip install --quiet "$@" -r /tmp/requirements.txt
COPY README.md ./
COPY app/ app/
COPY --from=assets /src/app/static/vendor/ app/static/vendor/
RUN if ls /wheels/*.whl >/dev/null 2>&1; then set -- --no-index --find-links /wheels; fi \
    && pip install --quiet "$@" --no-deps . \
    && cd / && python -m app.i18n \
    && rm -rf /src/build

# ---- nginx.conf rendered from the project's template for the compose network
FROM build AS nginx-config
COPY nginx/flask-chat.conf.j2 nginx/
COPY deploy/docker/render-nginx-conf.py deploy/docker/
# `--build-arg RATE_LIMITS=off` leaves nginx's limits out (load tests only)
ARG RATE_LIMITS=on
RUN python deploy/docker/render-nginx-conf.py >/tmp/nginx.conf

# ---- web: nginx serving /static/ itself and proxying the rest to the app replicas
FROM ${NGINX_IMAGE} AS web
RUN rm -f /etc/nginx/conf.d/default.conf
COPY --from=nginx-config /tmp/nginx.conf /etc/nginx/nginx.conf
COPY --from=build /src/app/static/ /usr/share/flask-chat/static/
EXPOSE 80
# the config says `daemon off;` itself (the image's default CMD would repeat it)
CMD ["nginx"]

# ---- app: the worker process (default target)
FROM ${PYTHON_IMAGE} AS app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLASK_CHAT_ENV=production \
    FLASK_CHAT_INSTANCE=/data \
    GUNICORN_BIND=0.0.0.0:8000
RUN useradd --system --user-group --uid 10001 --home-dir /srv/flask-chat --no-create-home \
        --shell /usr/sbin/nologin flaskchat \
    && mkdir -p /data /srv/flask-chat/deploy \
    && chown flaskchat:flaskchat /data \
    && chmod 700 /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/flask-chat
COPY deploy/gunicorn.conf.py deploy/
COPY deploy/docker-entrypoint.sh /usr/local/bin/flask-chat-entrypoint
USER flaskchat
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["flask-chat-entrypoint"]
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "app.wsgi:app"]

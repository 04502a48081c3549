# One image for ecowatch's own services (bridge, worker, simulators); the subcommand is the
# container's command, e.g. `docker run IMAGE worker`. See docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The project and its package folders (package-dir in pyproject.toml). `README*` rather than
# README.md: the readme is optional to the build, and a wildcard that matches nothing is
# skipped as long as pyproject.toml is there.
COPY pyproject.toml README* /src/
COPY ecowatch/ /src/ecowatch/
COPY edges/ /src/edges/
COPY config/ /src/config/
COPY ingest/ /src/ingest/
COPY streams/ /src/streams/
COPY alerts/ /src/alerts/
COPY simulators/ /src/simulators/
COPY console/ /src/console/
COPY cli/ /src/cli/
COPY devtools/ /src/devtools/

RUN pip install /src \
    && rm -rf /src \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin ecowatch \
    && mkdir -p /var/lib/ecowatch \
    && chown ecowatch:ecowatch /var/lib/ecowatch

# State (Faust's data dir, simulator credentials) lives here; a volume mounted on it starts out
# owned by the ecowatch user.
ENV ECOWATCH_STATE_DIR=/var/lib/ecowatch
WORKDIR /var/lib/ecowatch
USER ecowatch

ENTRYPOINT ["ecowatch"]
CMD ["--help"]

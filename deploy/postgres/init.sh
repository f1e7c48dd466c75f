#!/bin/sh
# Creates the fleet's PostgreSQL roles (init.sql beside this file) with the passwords from the
# environment. The postgres image runs every *.sh in /docker-entrypoint-initdb.d once, when it
# initialises an empty data volume (docker-compose.yml mounts this file there, and init.sql at
# /opt/bedrock-meter/postgres-init.sql). Changing a password later: ALTER ROLE ... PASSWORD, or
# `docker-compose down -v` to start from an empty volume.
set -e
psql --no-psqlrc -v ON_ERROR_STOP=1 \
     --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-bedrock_meter}" \
     -v bm_password="${BEDROCK_METER_PG_PASSWORD:?BEDROCK_METER_PG_PASSWORD is not set}" \
     -v grafana_password="${GRAFANA_PG_PASSWORD:?GRAFANA_PG_PASSWORD is not set}" \
     -f /opt/bedrock-meter/postgres-init.sql

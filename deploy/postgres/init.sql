-- Roles of the docker-compose fleet's PostgreSQL (docker-compose.yml, profile "fleet").
-- Run once, when the postgres service initialises an empty volume, by init.sh, which passes the
-- passwords from the environment as psql variables:
--   bm_password       BEDROCK_METER_PG_PASSWORD: the proxies' role, bedrock_meter
--   grafana_password  GRAFANA_PG_PASSWORD: Grafana's read-only role, grafana_reader
-- By hand: psql -U postgres -d bedrock_meter -v bm_password=... -v grafana_password=... -f init.sql
--
-- The proxies create and migrate their own table (`requests`, partitioned by month, under an
-- advisory lock) on first connect, so this file creates no table: only who may do what.
\set ON_ERROR_STOP on

-- The proxies: they own the database. In PostgreSQL 15 that is what lets them create tables and
-- partitions in schema public (owned by pg_database_owner); they are not superusers and can do
-- nothing in any other database.
CREATE ROLE bedrock_meter LOGIN PASSWORD :'bm_password';
ALTER DATABASE bedrock_meter OWNER TO bedrock_meter;

-- Grafana: reads everything (pg_read_all_data covers the partitions created later), writes
-- nothing, and a runaway dashboard query is stopped after 30 s.
CREATE ROLE grafana_reader LOGIN PASSWORD :'grafana_password' CONNECTION LIMIT 20;
GRANT pg_read_all_data TO grafana_reader;
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';

-- Nobody else connects to the ledger's database.
REVOKE ALL ON DATABASE bedrock_meter FROM PUBLIC;
GRANT CONNECT ON DATABASE bedrock_meter TO grafana_reader;

-- One database per Pont service (no service reads another's tables).
-- Run once by the postgres image on an empty data volume
-- (docker-compose.yml mounts this file into /docker-entrypoint-initdb.d/).
-- Each service creates its own tables at start (alembic, pont_shared.operations.migrations).
-- Roles come next, from docker-compose's one-shot `db-roles` service
-- (python -m pont_shared.operations.roles): per database an owner role that owns the tables
-- and migrates, and a runtime `<database>_app` role the service connects as.
CREATE DATABASE consent;
CREATE DATABASE referrals;
CREATE DATABASE bookings;
CREATE DATABASE transitions;
-- agency_link runs once per organisation, each with its own database.
CREATE DATABASE agency_school_6612001;
CREATE DATABASE agency_school_6614002;
CREATE DATABASE agency_health_cardiff_vale;
CREATE DATABASE agency_social_care_cardiff;
CREATE DATABASE agency_youth_work_cardiff;

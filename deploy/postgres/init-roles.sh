#!/bin/sh
# The ICS roles for PostgreSQL in docker-compose.yml: runs roles.sql (one login role per service,
# owning the schema of the same name; no passwords), then sets each role's password from its
# compose secret, /run/secrets/pg-<service>.
#
# The postgres image runs this once, from /docker-entrypoint-initdb.d, when it initialises an
# empty data volume. It can be run again at any time, e.g. on a volume created before the roles
# existed, or after changing a password file (`docker compose up -d` first, so that the
# container has the new secret):
#   docker compose exec postgres /docker-entrypoint-initdb.d/10-ics-roles.sh
set -e

roles_sql=${ICS_ROLES_SQL:-/etc/ics/roles.sql}
secrets=${ICS_SECRETS_DIR:-/run/secrets}

run_psql() {
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
        --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-ics}" "$@"
}

run_psql --file "$roles_sql"

for service in trusts workshops metrics reporting; do
    file="$secrets/pg-$service"
    if [ ! -s "$file" ]; then
        echo "init-roles: $file is missing or empty (see deploy/generate-secrets)" >&2
        exit 1
    fi
    # psql reads the file itself (\set with backquotes), so the password is in no command line;
    # :'password' quotes it as an SQL literal.
    run_psql <<SQL
\\set password \`cat $file\`
ALTER ROLE ics_$service PASSWORD :'password';
SQL
done
echo "init-roles: roles and schemas of database ${POSTGRES_DB:-ics} ready; passwords set"

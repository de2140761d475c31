#!/bin/bash
# First start: a data folder, and root's password from MYSQL_ROOT_PASSWORD
# for local and remote logins. Then the server, on every address.
set -euo pipefail
if [ "${1:-}" = mariadbd ]; then
  if [ ! -d /var/lib/mysql/mysql ]; then
    : "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is not set}"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
    mariadbd --user=mysql --skip-networking --socket=/run/mysqld/init.sock &
    pid=$!
    for _ in $(seq 100); do
      mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    mariadb --socket=/run/mysqld/init.sock -uroot <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
CREATE USER 'root'@'%' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
    kill "$pid"
    wait "$pid" || true
  fi
  exec mariadbd --user=mysql --bind-address=0.0.0.0 "${@:2}"
fi
exec "$@"

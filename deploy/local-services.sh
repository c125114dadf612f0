#!/usr/bin/env bash
# Start RabbitMQ (with its management plugin) and PostgreSQL on loopback when they are down.
# Used by CI and handy on a developer machine; leaves running services alone, except that under
# CI=true (or LIENTHONG_RESTART_BROKER=1) a RabbitMQ whose file-descriptor limit is too low for
# the test suite is restarted with a higher one (see start_rabbitmq).
set -euo pipefail

MIN_BROKER_FDS=${MIN_BROKER_FDS:-4096}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port seconds name
  for _ in $(seq 1 "$2"); do port_open "$1" && return 0; sleep 1; done
  echo "$3 did not come up on 127.0.0.1:$1" >&2; return 1
}

# RabbitMQ keeps a few file handles per quorum queue; with Debian's default soft limit of 1024
# (applied by `su` when root runs rabbitmq-server) it stalls new connections after about 300
# queues, which a test run can reach. Start it with the hard limit instead, without going
# through PAM, when we can.
start_rabbitmq() {
  if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1 && command -v setpriv >/dev/null \
     && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    ( ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
      cd /var/lib/rabbitmq
      HOME=/var/lib/rabbitmq exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
        /usr/lib/rabbitmq/bin/rabbitmq-server -detached )
  else
    rabbitmq-server -detached
  fi
}

broker_fd_limit() {
  local pid
  pid=$(ss -ltnpH 'sport = :5672' 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  [ -n "$pid" ] && awk '/Max open files/ {print $4}' "/proc/$pid/limits" 2>/dev/null
}

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  else
    echo "PostgreSQL is not running and not installed (apt-get install postgresql)" >&2; exit 1
  fi
fi
wait_port 5432 60 PostgreSQL

if ! port_open 5672; then
  if command -v rabbitmq-server >/dev/null; then
    echo "starting RabbitMQ"
    start_rabbitmq
  else
    echo "RabbitMQ is not running and not installed (apt-get install rabbitmq-server)" >&2; exit 1
  fi
else
  limit=$(broker_fd_limit || true)
  if [ -n "${limit:-}" ] && [ "$limit" != unlimited ] && [ "$limit" -lt "$MIN_BROKER_FDS" ]; then
    if [ "${CI:-}" = true ] || [ "${LIENTHONG_RESTART_BROKER:-}" = 1 ]; then
      echo "restarting RabbitMQ: its open-files limit is $limit, the tests need $MIN_BROKER_FDS"
      rabbitmqctl stop >/dev/null 2>&1 || true
      for _ in $(seq 1 30); do port_open 5672 || break; sleep 1; done
      start_rabbitmq
    else
      echo "warning: RabbitMQ's open-files limit is $limit; with many test queues it may stall" \
           "(restart it with a higher 'ulimit -n', or run with LIENTHONG_RESTART_BROKER=1)" >&2
    fi
  fi
fi
wait_port 5672 120 RabbitMQ

if ! port_open 15672; then
  echo "enabling the RabbitMQ management plugin"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
fi
wait_port 15672 120 "RabbitMQ management"
# The port opens before the API answers; wait until it does.
for _ in $(seq 1 60); do
  curl -fsS -o /dev/null -u guest:guest http://127.0.0.1:15672/api/overview 2>/dev/null && break
  sleep 1
done
echo "services: PostgreSQL :5432, RabbitMQ :5672 (open files: $(broker_fd_limit || echo '?')), management :15672"

#!/usr/bin/env bash
# Start RabbitMQ (with its management plugin) and PostgreSQL on loopback when they are down.
# Used by CI and handy on a developer machine; does nothing for services already running.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port seconds name
  for _ in $(seq 1 "$2"); do port_open "$1" && return 0; sleep 1; done
  echo "$3 did not come up on 127.0.0.1:$1" >&2; return 1
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
    rabbitmq-server -detached
  else
    echo "RabbitMQ is not running and not installed (apt-get install rabbitmq-server)" >&2; exit 1
  fi
fi
wait_port 5672 120 RabbitMQ

if ! port_open 15672; then
  echo "enabling the RabbitMQ management plugin"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
fi
wait_port 15672 120 "RabbitMQ management"
echo "services: PostgreSQL :5432, RabbitMQ :5672, management :15672"

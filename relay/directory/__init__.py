"""The agency directory: who is connected, who is hosted by whom, who is suspended.

The relay reads the ``agencies`` table (see :mod:`relay.directory.repository`); the commands in
:mod:`relay.cli.agency` change it through :mod:`relay.directory.service` and
:mod:`relay.directory.bulk`, which also provision the broker objects of connected agencies.

Choices where DESIGN.md is silent:

- A host must be a *connected* agency (no chains of hosting); a hosted unit has no broker objects.
- ``agency add`` of an agency that exists with the same name and host is a no-op that repairs
  its broker objects (permissions, queues, bindings) and keeps its password, unless
  ``--password-file`` is given (password rotation); different data is an error. A *new*
  connected agency always gets a new password, even if a RabbitMQ user of that name was left on
  the broker by this hub. Users are broker-wide, not per vhost: the users a hub creates carry
  the tag ``lienthong-hub:<vhost>``, and a user of the agency's name without it (another hub's,
  the demo's, an application's) is refused, never taken over (its password is not reset).
  Only a user that can reach nothing is taken over: no permissions on any vhost, no tag but
  hubs' tags, and those hubs' vhosts gone (RabbitMQ keeps users when a vhost is deleted, so
  test runs, demos and removed hubs leave them). ``relay setup`` tags as its own the untagged
  users of its directory whose only permissions are on its vhost (hubs of earlier versions).
- ``agency import`` upserts: new rows are inserted, changed names/hosts updated, ``state`` is
  never changed by an import. A connected agency that hosts units in the directory cannot become
  a hosted unit unless the file re-hosts those units too. New connected agencies, and connected
  agencies without a RabbitMQ user, are provisioned (unless ``--no-provision``); others are left
  alone so their adapters keep working.
- Broker changes happen inside the database transaction, before commit: when RabbitMQ refuses or
  is unreachable the directory is unchanged, and running the command again completes the job.
- ``agency suspend`` sets ``state = 'suspended'`` (the relay stops routing to and from it) and, for
  a connected agency, replaces its write permission by ``^$``: its adapter's publishes are refused
  by RabbitMQ (403) and stay in the adapter's spool until ``agency resume`` gives it back. Its
  read permission is kept, so it can still drain what was delivered before. Its open
  connections are closed (RabbitMQ caches permission checks per channel); it can reconnect and
  read, and publish again after ``agency resume``.
- Every connected agency's user gets the broker limits ``LIENTHONG_AGENCY_MAX_CONNECTIONS`` and
  ``LIENTHONG_AGENCY_MAX_CHANNELS`` at provisioning (``agency add`` / ``import``).
"""

from __future__ import annotations

from relay.directory.model import ACTIVE, SUSPENDED, Agency, AgencyState

__all__ = ["ACTIVE", "SUSPENDED", "Agency", "AgencyState"]

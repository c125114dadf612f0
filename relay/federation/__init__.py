"""Federation: links from this hub to another hub (issue 16; DESIGN §9).

Transport: **the adapter protocol itself**, not Shovel or Federation. A provincial hub is an
agency (e.g. ``000.00.00.H26``) of the national hub, whose directory lists the province's units
as its hosted units. The link, run by the provincial relay, is that agency on both hubs: it
submits to the national hub what the provincial relay routed to it, with publisher confirms
and ``user_id`` = the agency (checked by the national broker), and submits here what the
national hub delivers to its inbox. So the national hub authenticates the provincial hub and
checks, as for any adapter, that it sends only for its hosted units; the original sender stays
in the message (edXML From). Shovel would have needed the plugin on every hub, and Shovel and
Federation strip ``user_id`` or do not validate it, so the hub above could not tell who sent.

- :mod:`relay.federation.bridge`: what the link does with each message (pure);
- :mod:`relay.federation.link`: the pumps, run inside ``lienthong relay run``;
- :mod:`relay.federation.store`: the ``federation_links`` table (each link's password encrypted
  with the hub's key, :mod:`relay.secretkey`) and the mark ``agencies.federation_link`` that a
  removed link's agency keeps (so ``federation add`` can take it over); routing reads it per batch
  (``relay/worker/process.py``: unknown codes go *upstream*, a link brings in only codes outside
  this hub's directory: :func:`relay.domain.routing.resolve_recipient`, ``sender_refusal``);
- :mod:`relay.federation.service` and :mod:`relay.federation.cli`: ``lienthong federation``.
"""

"""The relay daemon: consume outboxes, route, persist, publish, confirm."""

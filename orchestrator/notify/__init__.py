"""Notifications: one JSON payload per event of an operation (and per split brain a
controller sees), sent to the topology's `notifications.targets`, commands or webhooks.

`payload.py` builds the payload (pure), `send.py` runs a command or POSTs a webhook (the
controller's `--hook` uses it too), `dispatch.py` delivers each event to each target in
order on a worker of its own, so that a slow or failing target never holds up or fails
an operation. The format is documented in docs/notifications.md.
"""

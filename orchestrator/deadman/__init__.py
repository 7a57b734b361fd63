"""The dead-man agent: the loss policy that fences a site even when its controller cannot.

The active site's controller feeds the agent (one per host in production, one per site
in the lab) after each cycle in which it confirmed that its site still holds the right
to serve. An agent that was fed as the holder and then hears nothing for `fence_after`
seconds fences what it guards: it stops the application roles that move, drops the
site's DNS data for the service's zones, and unmounts the mirrored volumes. It does so
whether the controller lost ZooKeeper (a partition isolating the site), died, or froze.

- `feed`: the signed datagram the controller sends, and its check (pure).
- `decision`: armed, fed, starved, fenced: one verdict and one sentence (pure).
- `actions`: what fencing a host means, from the topology (pure).
- `agent`: the process: listen, judge, fence.
- `feeder`: the controller's side.
"""

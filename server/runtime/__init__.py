"""The runtime: how the server runs, below the app and its handlers.

processes.py the process model: one serving process, or a supervisor and N spawned
workers (replaced when they die, stopped together on SIGINT/SIGTERM); balancer.py
hands each new connection to the ready worker with the fewest open; protocol.py is
aiohttp's connection handler (the service's own error pages for requests aiohttp
cannot parse, the first request's header timeout) and ``run_app``; sending.py writes a
response body to a client that may read slowly, or not at all (the send timeout, the
stall rule, the stream slots); disconnect.py stops a handler's work (an upload's
processing) once its client has hung up; memory.py makes glibc give freed memory back.

Nothing here imports the app, its handlers or the store: the command (server/cli/)
hands the runtime the factory that builds the app in each serving process.
"""

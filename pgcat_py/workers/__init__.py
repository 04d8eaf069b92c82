"""Worker processes sharing one listening port (SO_REUSEPORT), under a supervisor.

layout.py says how many workers and what share of each pool a worker gets; supervisor.py
starts, signals and replaces them; peers.py is the local control channel between workers
(cancel requests, bans, admin commands, merged views); merge.py adds up their views.
"""

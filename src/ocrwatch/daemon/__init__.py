"""The daemon (``ocrwatch run``): watch -> stabilize -> claim -> recognize -> dispose.

Rooms, in the order a file meets them: ``watch`` (events, polling, rescans), ``intake``
with ``stabilize`` (the quiet period, the decode probe, the claim), ``spool`` (the work
area), ``executor`` with ``local_executor`` or ``celery_executor`` (recognize and write
elsewhere; ``execute`` is the worker's side), ``disposition`` (archive, retry or
quarantine; the log line). ``journal`` records every step, ``recovery`` redoes what a crash
left, ``folders`` says where the folders are and whether they are there, ``coordinator``
wires it all and runs the loop.
"""

"""corral.triage: explain an endpoint alert with the agents' journal (issue 14, docs/triage.md).

Pure functions over a read-only event source, in this order (the order is the safety
argument: hard rules before any model, and the model can never lower them)::

    alert = load_alert(text)                              # alerts.py: corral, OCSF, Falco
    v = triage(alert, JournalSource(path), model=None)    # verdict.py: correlate.py ->
                                                          # evidence.py -> rules.py -> model.py
    tel.emit("triage.verdict", event_attributes(v, alert))

It imports nothing from corral.supervisor, corral.sandbox or corral.integrations.
"""

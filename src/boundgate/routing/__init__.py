"""Right-sized compute (issue #15): task classification, model ladders, escalation.

``tasks.py`` is the seam: a ``TaskClassifier`` says which kind of task a prompt is, so the
gateway can try the smallest adequate model first for ``model: "auto"``.
"""

"""Right-sized compute (issue #15): task classification, model ladders, escalation.

``tasks.py`` is the seam: a ``TaskClassifier`` says which kind of task a prompt is, so the
gateway can try the smallest adequate model first for ``model: "auto"``; ``classifier.py``
is the real one (``load_task_classifier``), a linear layer over the embedder's vector trained
on ``prompts.py``'s labelled set (``data/``). ``ladder.py`` holds the policy: which ladder and
rung an auto request starts on, when it climbs, and what right-sizing saved against the
ladder's top rung (docs/routing.md).
"""

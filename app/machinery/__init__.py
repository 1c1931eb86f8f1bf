"""The machinery every kind of ruleset shares.

The rules language, validation and the engine in a child process (``rules``), versions
and scenarios, decision records, experiments and replays. A kind plugs in as data
(``rules.kinds``); the machinery names no kind's module in an import.
"""

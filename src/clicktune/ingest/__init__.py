"""What clicktune takes in, checked the same way whichever door it comes through.

The input records (sessions with their events, items, judgments) and the field types they share,
the checks that need the settings or the clock, and the NDJSON importer: the API's routes, its
import endpoint and the CLI's import commands all call these. A refusal is an `InvalidInput`
naming its code and param, never an HTTP answer: the API maps codes to statuses.
"""

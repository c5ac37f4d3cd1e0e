"""What changed between two signed reports of one site or image (`diff`, `run --baseline`).

snapshot.py  the comparable facts of one report, read from its evidence tables and report.json
diff.py      two snapshots -> one diff document, and whether it is a regression
render.py    the diff as text, JSON or Markdown (a pull-request comment)
baseline.py  `run --baseline`: the verified earlier report, compared while the new one is written
"""

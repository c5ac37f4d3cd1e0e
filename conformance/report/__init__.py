"""The signed report directory: one writer per file, one orchestrator (`assemble.write_report`).

model.py         ReportRun in, ReportSummary out, ControlInfo (what a catalog control offers)
view.py          results + catalog + evidence -> one ReportView every writer renders
ledger.py        writes into the unfinished directory, hashing every byte written
evidence.py      captures and other evidence copied and hashed; captures.json, profile, tools
tables.py        evidence/*.csv, streamed (flow N is line N+1 of flows.csv)
json_report.py   report.json
html_report.py   report.html (self-contained, offline)
junit_report.py  junit.xml
assemble.py      the order of it all, the signature last, the atomic rename
"""

"""The console's operations, one module per resource; the HTML pages and the JSON API both call these.

Each function takes what it needs (the console DB, an alert view, settings, the acting
`Principal`) and raises `webui.errors.ServiceError` with an HTTP status for what cannot be done.
Every change is audited here, so pages and API cannot differ in what they record.
"""

"""The web console: the seed's screens served by ``ogref serve`` — the tree of organisational
units, classrooms and groups, the classroom map with each computer's status colour updating
live, the Restore form (*Restaurar*) with its two image columns and the per-computer preview, the
command history and each computer's tracking log — in Spanish and English.

Server-rendered pages (Jinja2) with htmx for the parts that change in place and a few lines of
JavaScript for the live map and logs (server-sent events from the API).  No build step: htmx is
committed as published (``static/htmx.min.js``, htmx.org 2.0.11 from the npm registry, 0BSD).

Every page calls the same API code paths as scripts do — the same authentication, roles, CSRF
check and decision core; nothing here decides who may do what or which method a computer gets.
"""

"""FHIR search: parameter definitions, index extraction at write time, query parsing.

https://hl7.org/fhir/R4/search.html. Pure code over plain data; the SQL lives with the
repository (health/db/search_sql.py).
"""

"""Reports: HTML pages and plots made from saved artefacts (never live training objects)."""

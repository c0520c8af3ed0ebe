"""Read a study's records and draw or summarise them: curves, pictures, the dashboard, the report.
Views never train and never open a search."""

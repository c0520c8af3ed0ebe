"""What a study keeps and how: storages, trial and study records, certificates, and Optuna's and
optuna-dashboard's private formats."""

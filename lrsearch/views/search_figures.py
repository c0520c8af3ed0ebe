"""The dashboard's part in a search, handed to the search by whoever starts it: the search never
imports the views, and a search without figures loads none of their code."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lrsearch.store.storage import artifact_folder

_log = logging.getLogger("lrsearch")

if TYPE_CHECKING:
    import optuna

    from lrsearch.problem.config import SearchConfig
    from lrsearch.views.dashboard import StudyRefresher, TrialPictures


@dataclass(frozen=True)
class SearchFigures:
    """Each trial's picture as it ends, the study's figures kept current while the workers run, and
    refreshed once more after certification. Plain values, so it crosses into worker processes."""

    storage: str
    study_name: str
    artifacts: Path | None = None  # the artifact folder setting (None: beside the study file)

    @classmethod
    def of(cls, config: SearchConfig) -> SearchFigures | None:
        """The figures of `config`'s search; None when it keeps none (`study.figures: false`)."""
        if not config.study.figures:
            return None
        return cls(config.study.storage, config.study.name, config.study.artifacts)

    def trial_pictures(self) -> TrialPictures | None:
        """What attaches each trial's picture; None where the storage has no artifact folder, or where it
        cannot be written (said in one line: the search goes on without pictures, its storage is fine)."""
        folder = artifact_folder(self.storage, self.artifacts)
        if folder is None:
            return None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as error:
            why = error.strerror or type(error).__name__
            _log.warning("no trial pictures: cannot write in the artifact folder %s (%s)", folder, why)
            return None
        from lrsearch.views.dashboard import TrialPictures  # plotting code is imported only to draw

        return TrialPictures(folder)

    def while_searching(self, study: optuna.Study) -> StudyRefresher:
        """A context that keeps the study's figures and best-config note current while it is open."""
        from lrsearch.views.dashboard import StudyRefresher, figures_lock

        return StudyRefresher(study, figures_lock(self.storage, self.study_name))

    def after_certify(self, study: optuna.Study) -> None:
        """Put a new certificate in the study's note and figures."""
        from lrsearch.views.dashboard import refresh_locked

        refresh_locked(study, self.storage)

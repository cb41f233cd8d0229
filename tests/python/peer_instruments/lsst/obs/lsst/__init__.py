"""Stand-ins for the instrument classes of obs_lsst, for the benchmark's peer only.

daf_butler_migrate's universe 5 -> 6 step imports each instrument's class by the
`class_name` stored in the `instrument` table and asks its metadata translator for the
day_obs offset. obs_lsst is not on PyPI, so bench_vs_migrate.py puts this folder on the
peer's PYTHONPATH: each class carries only that offset, the same fact Ferry's
plugins/obs_lsst hooks give (LSSTCam and LATISS: 12 h).
"""

from astropy.time import TimeDelta


class _LsstTranslator:
    @classmethod
    def observing_date_to_offset(cls, observing_date):
        return TimeDelta(12 * 3600, format="sec")


class LsstCam:
    translatorClass = _LsstTranslator


class Latiss:
    translatorClass = _LsstTranslator

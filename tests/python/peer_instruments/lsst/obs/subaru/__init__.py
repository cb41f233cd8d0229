"""Stand-in for obs_subaru's HyperSuprimeCam, for the benchmark's peer only.

See lsst/obs/lsst/__init__.py next to this folder: the class carries only the day_obs
offset that daf_butler_migrate's universe 5 -> 6 step asks for (HSC: 0 h, as Ferry's
plugins/obs_subaru hook says).
"""

from astropy.time import TimeDelta


class _HscTranslator:
    @classmethod
    def observing_date_to_offset(cls, observing_date):
        return TimeDelta(0, format="sec")


class HyperSuprimeCam:
    translatorClass = _HscTranslator

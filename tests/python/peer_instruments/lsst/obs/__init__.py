# A namespace package like daf_butler's own `lsst`, so that this folder on PYTHONPATH
# adds `lsst.obs` without hiding `lsst.daf`, `lsst.utils` and the rest.
import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)

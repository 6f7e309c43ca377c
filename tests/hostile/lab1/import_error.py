# An exception while the module is imported.
raise RuntimeError("this file crashes when imported")

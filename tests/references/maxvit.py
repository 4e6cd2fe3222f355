from . import readme

CASES = [readme("maxvit", 79_981_380)]

#!/usr/bin/env python3
"""TAP producer for prove: runs the cloudsim unittest suite (tests/cloudsim)
and reports each test as one TAP line. Exits non-zero when any test fails."""

import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TapResult(unittest.TestResult):
    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.n = 0

    def line(self, text):
        self.stream.write(text + "\n")
        self.stream.flush()

    def name(self, test):
        return test.id().replace("tests.cloudsim.", "")

    def diag(self, text):
        for row in text.rstrip().splitlines():
            self.line("# " + row)

    def addSuccess(self, test):
        self.n += 1
        self.line("ok %d - %s" % (self.n, self.name(test)))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.n += 1
        self.line("not ok %d - %s" % (self.n, self.name(test)))
        self.diag(self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self.n += 1
        self.line("not ok %d - %s" % (self.n, self.name(test)))
        self.diag(self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.n += 1
        self.line("ok %d - %s # SKIP %s" % (self.n, self.name(test), reason))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.n += 1
        self.line("not ok %d - %s # TODO expected failure" % (self.n, self.name(test)))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.n += 1
        self.line("not ok %d - %s # unexpected success" % (self.n, self.name(test)))


def main():
    os.chdir(ROOT)
    sys.path.insert(0, ROOT)
    suite = unittest.defaultTestLoader.discover("tests/cloudsim", top_level_dir=ROOT)
    result = TapResult(sys.stdout)
    suite.run(result)
    # The plan goes last (TAP allows it): a failed setUpClass reports one
    # line for a whole class, so the count is known only now.
    print("1..%d" % result.n, flush=True)
    return 0 if result.wasSuccessful() and result.n else 1


if __name__ == "__main__":
    sys.exit(main())

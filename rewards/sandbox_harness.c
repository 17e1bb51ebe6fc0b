/* sandbox_harness.c — the languages the sandbox knows, their test harnesses, the payload the
 * harness reads from fd 3 and the marker it writes to fd 4.
 *
 * Protocol (see sandbox.h for why): the trainer writes "<nonce>\n<N>\n" and the N tests into a
 * memfd that the program sees as fd 3. The harness reads all of fd 3 and closes it, runs the
 * code file, then each test, counting those that complete, and finally writes
 * "PT <nonce> <passed> <N>\n" to fd 4. Exiting in the code (sys.exit, os._exit, a signal) ends
 * the process before that line, so such a run has no marker and scores nothing.
 *
 * Python harness hardening: exec, compile and os.write/_exit are bound to locals before the code
 * runs, so code that rebinds builtins.exec or os._exit cannot turn the tests into no-ops; tests
 * are compiled with optimize=0 (asserts always on); trace and profile hooks are cleared before
 * each test; any BaseException from a test (SystemExit included) fails that test only. The code
 * runs as __main__ in its own globals, and the tests run in those same globals (as if appended
 * to the file, the way HumanEval-style suites run).
 *
 * sh harness: tests are one-line commands, each run in a subshell after sourcing the code; a
 * command that exits 0 passes. The nonce is a shell variable there, readable by the sourced code:
 * the sh harness defeats early exits, not a hostile script (use it for shell tasks and tests).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rewards/sandbox_impl.h"

static const char PY_HARNESS[] =
    "import os, sys\n"
    "def _pt_harness():\n"
    "    rd, wr, cl, ex = os.read, os.write, os.close, os._exit\n"
    "    _exec, _compile, _str, _type = exec, compile, str, type\n"
    "    settrace, setprofile, out, err = sys.settrace, sys.setprofile, sys.stdout, sys.stderr\n"
    "    buf = b''\n"
    "    while True:\n"
    "        chunk = rd(3, 1 << 16)\n"
    "        if not chunk:\n"
    "            break\n"
    "        buf += chunk\n"
    "    cl(3)\n"
    "    nonce, n, rest = buf.split(b'\\n', 2)\n"
    "    n = int(n)\n"
    "    tests = []\n"
    "    for i in range(n):\n"
    "        head, rest = rest.split(b'\\n', 1)\n"
    "        k = int(head)\n"
    "        tests.append(rest[:k].decode('utf-8', 'surrogateescape'))\n"
    "        rest = rest[k:]\n"
    "    del buf, rest\n"
    "    with open('main.py', 'rb') as f:\n"
    "        src = f.read()\n"
    "    g = {'__name__': '__main__', '__builtins__': __builtins__, '__file__': 'main.py'}\n"
    "    _exec(_compile(src, 'main.py', 'exec', dont_inherit=True, optimize=0), g)\n"
    "    passed = 0\n"
    "    i = 0\n"
    "    for t in tests:\n"
    "        settrace(None)\n"
    "        setprofile(None)\n"
    "        try:\n"
    "            _exec(_compile(t, 'test %d' % i, 'exec', dont_inherit=True, optimize=0), g)\n"
    "            passed += 1\n"
    "        except BaseException as e:\n"
    "            try:\n"
    "                msg = 'test %d failed: %s: %s\\n' % (i, _type(e).__name__, _str(e)[:300])\n"
    "                wr(2, msg.encode('utf-8', 'replace'))\n"
    "            except BaseException:\n"
    "                pass\n"
    "        i += 1\n"
    "    for s in (sys.stdout, sys.stderr, out, err):\n"
    "        try:\n"
    "            s.flush()\n"
    "        except BaseException:\n"
    "            pass\n"
    "    wr(4, b'PT ' + nonce + b' %d %d\\n' % (passed, n))\n"
    "    ex(0)\n"
    "_pt_harness()\n";

static const char SH_HARNESS[] =
    "IFS= read -r _pt_nonce <&3 || exit 111\n"
    "read -r _pt_n <&3 || exit 111\n"
    "_pt_i=0\n"
    "while [ \"$_pt_i\" -lt \"$_pt_n\" ]; do\n"
    "  IFS= read -r _pt_line <&3\n"
    "  eval \"_pt_test_$_pt_i=\\$_pt_line\"\n"
    "  _pt_i=$((_pt_i + 1))\n"
    "done\n"
    "exec 3<&-\n"
    ". ./main.sh\n"
    "_pt_ok=0\n"
    "_pt_i=0\n"
    "while [ \"$_pt_i\" -lt \"$_pt_n\" ]; do\n"
    "  eval \"_pt_line=\\$_pt_test_$_pt_i\"\n"
    "  if (eval \"$_pt_line\") </dev/null; then _pt_ok=$((_pt_ok + 1));\n"
    "  else echo \"test $_pt_i failed: $_pt_line\" >&2; fi\n"
    "  _pt_i=$((_pt_i + 1))\n"
    "done\n"
    "printf 'PT %s %d %d\\n' \"$_pt_nonce\" \"$_pt_ok\" \"$_pt_n\" >&4\n"
    "exit 0\n";

static const sandbox_language LANGUAGES[] = {
    {"python", {"py", "python3", NULL}, "/usr/bin/python3 -I -S -B", "main.py", PY_HARNESS, PAYLOAD_LENGTHS,
     {"MemoryError", NULL}},
    {"sh", {"bash", "shell", NULL}, "/bin/sh", "main.sh", SH_HARNESS, PAYLOAD_LINES,
     {"Cannot allocate memory", "Out of space", "memory exhausted", "out of memory", NULL}},
};

const sandbox_language *sandbox_language_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof LANGUAGES / sizeof LANGUAGES[0]; i++) {
        if (strcasecmp(LANGUAGES[i].name, name) == 0) return &LANGUAGES[i];
        for (int a = 0; LANGUAGES[i].aliases[a]; a++)
            if (strcasecmp(LANGUAGES[i].aliases[a], name) == 0) return &LANGUAGES[i];
    }
    return NULL;
}

pt_status sandbox_payload_build(char **buf, size_t *len, payload_format fmt, const char *nonce,
                                const char *const *tests, int n_tests, pt_error *err) {
    size_t need = strlen(nonce) + 32;
    for (int i = 0; i < n_tests; i++) {
        PT_CHECK(tests[i], err, PT_ERR_INVALID, "test %d is NULL", i);
        size_t tl = strlen(tests[i]);
        if (fmt == PAYLOAD_LINES && (memchr(tests[i], '\n', tl) || memchr(tests[i], '\r', tl)))
            PT_FAIL(err, PT_ERR_INVALID, "test %d holds a line break; sh tests are one command per line", i);
        need += tl + 24;
    }
    char *b = malloc(need);
    PT_CHECK_ALLOC(b, err, need);
    size_t at = (size_t)snprintf(b, need, "%s\n%d\n", nonce, n_tests);
    for (int i = 0; i < n_tests; i++) {
        size_t tl = strlen(tests[i]);
        if (fmt == PAYLOAD_LENGTHS) at += (size_t)snprintf(b + at, need - at, "%zu\n", tl);
        memcpy(b + at, tests[i], tl);
        at += tl;
        if (fmt == PAYLOAD_LINES) b[at++] = '\n';
    }
    *buf = b;
    *len = at;
    return PT_OK;
}

/* Parses a non-negative decimal int at *p (at most 9 digits); advances *p. */
static bool parse_count(int *out, const char **p, const char *end) {
    const char *s = *p;
    int v = 0, digits = 0;
    while (s < end && *s >= '0' && *s <= '9' && digits < 9) v = v * 10 + (*s++ - '0'), digits++;
    if (digits == 0 || (s < end && *s >= '0' && *s <= '9')) return false;
    *out = v;
    *p = s;
    return true;
}

bool sandbox_marker_parse(int *passed, int *total, const char *buf, size_t len, const char *nonce) {
    size_t nl = strlen(nonce);
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) break; /* a marker is a whole line */
        const char *s = p;
        int a, b;
        if ((size_t)(eol - s) > 3 + nl && memcmp(s, "PT ", 3) == 0 && memcmp(s + 3, nonce, nl) == 0 &&
            s[3 + nl] == ' ') {
            s += 4 + nl;
            if (parse_count(&a, &s, eol) && s < eol && *s == ' ' && (s++, parse_count(&b, &s, eol)) && s == eol &&
                a <= b) {
                *passed = a;
                *total = b;
                return true;
            }
        }
        p = eol + 1;
    }
    return false;
}

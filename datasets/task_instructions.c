/* task_instructions.c — short templated instructions with exact reference answers, in the
 * messages format, so that SFT on instruction data has a bundled example set.
 *
 * Templates (the "task" field names them; difficulty d in 1..3):
 *   sort_numbers   3 + 2d numbers below 10^(d+1), ascending or descending, answer "a, b, c"
 *   sort_words     2 + 2d words, alphabetical (byte order; the words are lower-case ASCII)
 *   reverse        a word (d = 1) or 3 + 3d random letters, reversed
 *   count_letter   how often a letter occurs in d words (the letter is from the text 3 times in 4)
 *   count_words    how many words in 2 + 3d words separated by single spaces
 *   convert_units  an exact conversion between two units of one quantity, in either direction
 *                  (the smaller-unit amount is always a multiple of the factor)
 *   extreme        the largest or smallest of 3 + 2d numbers below 10^(d+1)
 *   uppercase      d + 1 words in capital letters
 * The assistant's reply is the bare answer, so a verifier compares strings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/tasks.h"

static const char *const WORDS[] = {
    "apple",   "river",   "planet",  "garden",  "window",   "yellow",   "strawberry", "banana",  "mountain",
    "pencil",  "coffee",  "orange",  "silver",  "rabbit",   "forest",   "candle",     "bridge",  "summer",
    "winter",  "letter",  "market",  "pepper",  "circle",   "rocket",   "button",     "island",  "library",
    "kitten",  "ladder",  "mirror",  "number",  "ocean",    "puzzle",   "question",   "rainbow", "saddle",
    "teacher", "tunnel",  "umbrella", "valley", "wagon",    "zebra",    "anchor",     "basket",  "cherry",
    "dragon",  "engine",  "feather", "guitar",  "harbor",   "jacket",   "kernel",     "lemon",   "meadow",
    "needle",  "octopus", "parrot",  "quiet",   "raccoon",  "shadow",   "tomato",     "velvet",  "walrus",
    "balloon", "cactus",  "dolphin", "falcon",  "giraffe",  "hammer",   "iceberg",    "jungle",  "koala",
    "lantern", "marble",  "nectar",  "oyster",  "penguin",  "quartz",   "rhythm",     "sparrow", "thunder",
    "tiger",   "violin",  "whistle", "blanket", "compass",  "diamond",  "eclipse",    "fossil",  "glacier",
    "horizon", "journey", "kettle",  "lobster", "mustard",  "notebook", "pillow",     "saturn",  "spoon",
    "table",   "cloud",   "stone",   "bread",   "chair",    "grass",    "horse",      "light",   "music",
    "paper",   "sugar",   "water",   "school",  "street",   "family",   "friend",     "morning", "evening",
};
static const uint32_t N_WORDS = sizeof WORDS / sizeof WORDS[0];

typedef struct unit_pair {
    const char *big, *small;
    int64_t factor; /* 1 big = factor small */
} unit_pair;

static const unit_pair UNITS[] = {
    {"kilometers", "meters", 1000}, {"meters", "centimeters", 100}, {"centimeters", "millimeters", 10},
    {"kilograms", "grams", 1000},   {"hours", "minutes", 60},       {"minutes", "seconds", 60},
    {"days", "hours", 24},          {"weeks", "days", 7},           {"liters", "milliliters", 1000},
    {"feet", "inches", 12},         {"yards", "feet", 3},
};

enum { MAX_ITEMS = 16 };

static const char *const TEMPLATES[] = {"sort_numbers", "sort_words", "reverse", "count_letter",
                                        "count_words",  "convert_units", "extreme", "uppercase"};

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int64_t pow10_i64(int p) {
    int64_t v = 1;
    while (p-- > 0) v *= 10;
    return v;
}

static const char *random_word(rng *r) { return WORDS[rng_below(r, N_WORDS)]; }

/* n random words joined by single spaces. */
static void random_words(task_text *t, rng *r, int n) {
    for (int i = 0; i < n; i++) task_text_printf(t, i ? " %s" : "%s", random_word(r));
}

static void number_list(task_text *t, const int64_t *v, int n) {
    for (int i = 0; i < n; i++) task_text_printf(t, i ? ", %lld" : "%lld", (long long)v[i]);
}

/* Fills user and answer for template `which`. */
static void make_instruction(task_text *user, task_text *answer, rng *r, int which, int d) {
    int64_t nums[MAX_ITEMS];
    switch (which) {
    case 0: { /* sort_numbers */
        int n = 3 + 2 * d;
        bool desc = rng_below(r, 2);
        for (int i = 0; i < n; i++) nums[i] = (int64_t)rng_below(r, (uint32_t)pow10_i64(d + 1));
        task_text_printf(user, "Sort these numbers from %s: ", desc ? "largest to smallest" : "smallest to largest");
        number_list(user, nums, n);
        task_text_printf(user, ". Reply with the sorted numbers separated by commas.");
        qsort(nums, (size_t)n, sizeof nums[0], cmp_i64);
        if (desc)
            for (int i = 0; i < n / 2; i++) {
                int64_t tmp = nums[i];
                nums[i] = nums[n - 1 - i];
                nums[n - 1 - i] = tmp;
            }
        number_list(answer, nums, n);
        break;
    }
    case 1: { /* sort_words */
        int n = 2 + 2 * d;
        const char *w[MAX_ITEMS];
        for (int i = 0; i < n; i++) w[i] = random_word(r);
        task_text_printf(user, "Sort these words alphabetically: ");
        for (int i = 0; i < n; i++) task_text_printf(user, i ? ", %s" : "%s", w[i]);
        task_text_printf(user, ". Reply with the sorted words separated by commas.");
        qsort(w, (size_t)n, sizeof w[0], cmp_str);
        for (int i = 0; i < n; i++) task_text_printf(answer, i ? ", %s" : "%s", w[i]);
        break;
    }
    case 2: { /* reverse */
        char s[32];
        if (d == 1) {
            snprintf(s, sizeof s, "%s", random_word(r));
        } else {
            int n = 3 + 3 * d;
            for (int i = 0; i < n; i++) s[i] = (char)('a' + rng_below(r, 26));
            s[n] = 0;
        }
        task_text_printf(user, "Reverse the letters of \"%s\". Reply with the reversed text only.", s);
        for (size_t i = strlen(s); i-- > 0;) task_text_printf(answer, "%c", s[i]);
        break;
    }
    case 3: { /* count_letter */
        task_text text = {0};
        random_words(&text, r, d);
        char letter;
        if (rng_below(r, 4) != 0) {
            do letter = text.buf[rng_below(r, (uint32_t)text.len)];
            while (letter == ' ');
        } else {
            letter = (char)('a' + rng_below(r, 26));
        }
        int count = 0;
        for (size_t i = 0; i < text.len; i++) count += text.buf[i] == letter;
        task_text_printf(user, "How many times does the letter \"%c\" appear in \"%s\"? Reply with a number only.",
                         letter, text.buf);
        task_text_printf(answer, "%d", count);
        break;
    }
    case 4: { /* count_words */
        int n = 2 + 3 * d;
        task_text_printf(user, "How many words are in this text: \"");
        random_words(user, r, n);
        task_text_printf(user, "\"? Reply with a number only.");
        task_text_printf(answer, "%d", n);
        break;
    }
    case 5: { /* convert_units */
        const unit_pair *u = &UNITS[rng_below(r, sizeof UNITS / sizeof UNITS[0])];
        int64_t v = 2 + (int64_t)rng_below(r, (uint32_t)(2 * pow10_i64(d) - 1)); /* 2 .. 2·10^d */
        if (rng_below(r, 2)) {
            task_text_printf(user, "Convert %lld %s to %s. Reply with the number only.", (long long)v, u->big, u->small);
            task_text_printf(answer, "%lld", (long long)(v * u->factor));
        } else {
            task_text_printf(user, "Convert %lld %s to %s. Reply with the number only.", (long long)(v * u->factor),
                             u->small, u->big);
            task_text_printf(answer, "%lld", (long long)v);
        }
        break;
    }
    case 6: { /* extreme */
        int n = 3 + 2 * d;
        bool largest = rng_below(r, 2);
        for (int i = 0; i < n; i++) nums[i] = (int64_t)rng_below(r, (uint32_t)pow10_i64(d + 1));
        int64_t best = nums[0];
        for (int i = 1; i < n; i++) best = largest ? (nums[i] > best ? nums[i] : best) : (nums[i] < best ? nums[i] : best);
        task_text_printf(user, "What is the %s of these numbers: ", largest ? "largest" : "smallest");
        number_list(user, nums, n);
        task_text_printf(user, "? Reply with the number only.");
        task_text_printf(answer, "%lld", (long long)best);
        break;
    }
    default: { /* uppercase */
        task_text text = {0};
        random_words(&text, r, d + 1);
        task_text_printf(user, "Write \"%s\" in capital letters. Reply with that text only.", text.buf);
        for (size_t i = 0; i < text.len; i++)
            task_text_printf(answer, "%c", text.buf[i] == ' ' ? ' ' : (char)(text.buf[i] - 'a' + 'A'));
        break;
    }
    }
}

static cJSON *message(const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    if (m && cJSON_AddStringToObject(m, "role", role) && cJSON_AddStringToObject(m, "content", content)) return m;
    cJSON_Delete(m);
    return NULL;
}

pt_status task_instructions_generate(task_example *out, rng *r, int difficulty, pt_error *err) {
    out->record = NULL;
    out->key = NULL;
    PT_CHECK(difficulty >= 1 && difficulty <= 3, err, PT_ERR_CONFIG,
             "instructions difficulty %d is out of range 1..3", difficulty);
    const int n_templates = (int)(sizeof TEMPLATES / sizeof TEMPLATES[0]);
    int which = (int)rng_below(r, (uint32_t)n_templates);
    task_text user = {0}, answer = {0}, key = {0};
    make_instruction(&user, &answer, r, which, difficulty);
    task_text_printf(&key, "instructions:%s", user.buf);
    PT_CHECK(!user.overflow && !answer.overflow && !key.overflow, err, PT_ERR_INTERNAL,
             "instructions: a text outgrew its buffer");
    cJSON *rec = cJSON_CreateObject();
    cJSON *msgs = cJSON_CreateArray();
    cJSON *mu = message("user", user.buf), *ma = message("assistant", answer.buf);
    bool ok = rec && msgs && mu && ma && cJSON_AddItemToArray(msgs, mu);
    if (ok) mu = NULL;
    ok = ok && cJSON_AddItemToArray(msgs, ma);
    if (ok) ma = NULL;
    ok = ok && cJSON_AddItemToObject(rec, "messages", msgs);
    if (ok) msgs = NULL;
    ok = ok && cJSON_AddStringToObject(rec, "task", TEMPLATES[which]);
    char *key_copy = ok ? strdup(key.buf) : NULL;
    cJSON_Delete(mu);
    cJSON_Delete(ma);
    cJSON_Delete(msgs);
    if (!key_copy) {
        cJSON_Delete(rec);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory building an instruction example");
    }
    out->record = rec;
    out->key = key_copy;
    return PT_OK;
}

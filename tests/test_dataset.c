/* test_dataset.c — dataset shapes, bad records, loss masks, truncation and the SQLite source.
 *
 * Peers and independent checks: token ids come from the tokenizer that test_tokenizer.c proves
 * identical to `tokenizers`; masks are checked by decoding the masked tokens and comparing them
 * with the completion / assistant text written by hand here (with the chat markers the DeepSeek
 * template is documented to write), never with output of the code under test. Bad-record
 * messages are compared with the exact text a user should see, location and field included.
 * Fixtures: the hand-written JSONL files in tests/fixtures/datasets/ (README.md there lists
 * them) and the tokenizer in tests/fixtures/tokenizer/.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "tests/util/check.h"

#define BOS "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
#define EOS "<\uff5cend\u2581of\u2581sentence\uff5c>"
#define USER "<\uff5cUser\uff5c>"
#define ASSISTANT "<\uff5cAssistant\uff5c>"

/* ------------------------------------------------------------------------------- helpers */

static tokenizer *load_tok(void) {
    char path[1024];
    pt_error err = {0};
    tokenizer *tok = NULL;
    cr_assert_eq(tokenizer_load(&tok, fixture_path(path, sizeof path, "tokenizer"), &err), PT_OK, "%s", err.msg);
    return tok;
}

static dataset *open_fixture(tokenizer *tok, const char *name, const dataset_options *o) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "datasets/%s", name);
    pt_error err = {0};
    dataset *ds = NULL;
    cr_assert_eq(dataset_open_jsonl(&ds, fixture_path(path, sizeof path, rel), tok, o, &err), PT_OK, "%s", err.msg);
    return ds;
}

static char *decode(tokenizer *tok, const int32_t *ids, size_t n) {
    char *s = NULL;
    size_t len;
    pt_error err = {0};
    cr_assert_eq(tokenizer_decode(&s, &len, tok, ids, n, false, &err), PT_OK, "%s", err.msg);
    return s;
}

/* The text of the tokens in the loss mask, in order. */
static char *masked_text(tokenizer *tok, const dataset_seq *s) {
    int32_t *ids = malloc((s->n ? s->n : 1) * sizeof *ids);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->loss[i]) ids[k++] = s->ids[i];
    char *t = decode(tok, ids, k);
    free(ids);
    return t;
}

static void expect_decode(tokenizer *tok, const dataset_seq *s, const char *want) {
    char *got = decode(tok, s->ids, s->n);
    cr_assert_str_eq(got, want);
    free(got);
}

static void expect_masked(tokenizer *tok, const dataset_seq *s, const char *want) {
    char *got = masked_text(tok, s);
    cr_assert_str_eq(got, want);
    free(got);
}

static void get(dataset_example *ex, dataset *ds, size_t i) {
    pt_error err = {0};
    cr_assert_eq(dataset_get(ex, ds, i, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(ex->index, i);
}

typedef struct tmpdir {
    char path[256];
} tmpdir;

static void tmp_make(tmpdir *d) {
    snprintf(d->path, sizeof d->path, "/tmp/pt-dataset-XXXXXX");
    cr_assert(mkdtemp(d->path), "mkdtemp failed");
}

static void tmp_remove(tmpdir *d) {
    DIR *dir = opendir(d->path);
    cr_assert(dir);
    for (struct dirent *e; (e = readdir(dir));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", d->path, e->d_name);
        cr_assert_eq(unlink(p), 0, "unlink %s", p);
    }
    closedir(dir);
    cr_assert_eq(rmdir(d->path), 0);
}

static const char *tmp_write(char *path, size_t len, const tmpdir *d, const char *name, const char *content) {
    snprintf(path, len, "%s/%s", d->path, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fwrite(content, 1, strlen(content), f);
    fclose(f);
    return path;
}

/* Opens `content` as <tmp>/train.jsonl and expects failure with `want` in the message. */
static void expect_open_error(tokenizer *tok, const char *content, const dataset_options *o, pt_status status,
                              const char *want) {
    tmpdir d;
    tmp_make(&d);
    char path[512];
    tmp_write(path, sizeof path, &d, "train.jsonl", content);
    dataset *ds = NULL;
    pt_error err = {0};
    pt_status st = dataset_open_jsonl(&ds, path, tok, o, &err);
    cr_expect_eq(st, status, "status %d (%s) for:\n%s", st, err.msg, content);
    cr_expect(strstr(err.msg, want) != NULL, "message\n  %s\ndoes not contain\n  %s", err.msg, want);
    cr_assert_null(ds);
    tmp_remove(&d);
}

/* ------------------------------------------------------------------------------- shapes */

Test(dataset_shapes, text_bos_text_eos_and_loss_on_every_token) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "text.jsonl", NULL);
    cr_assert_eq(dataset_get_format(ds), DATASET_FORMAT_TEXT);
    cr_assert_eq(dataset_size(ds), 3);
    const char *want[] = {BOS "The quick brown fox jumps over the lazy dog." EOS,
                          BOS "Paris is the capital of France." EOS, BOS "def add(a, b):\n    return a + b\n" EOS};
    dataset_example ex = {0};
    for (size_t i = 0; i < 3; i++) {
        get(&ex, ds, i);
        cr_assert_eq(ex.line, i + 1);
        expect_decode(tok, &ex.seq, want[i]);
        for (size_t t = 0; t < ex.seq.n; t++) cr_assert_eq(ex.seq.loss[t], 1, "record %zu token %zu", i, t);
        cr_assert_eq(ex.seq.ids[0], tokenizer_bos_id(tok));
        cr_assert_eq(ex.seq.ids[ex.seq.n - 1], tokenizer_eos_id(tok));
        cr_assert_eq(dataset_tokens(ds, i), ex.seq.n);
    }
    dataset_example_free(&ex);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_shapes, text_already_ending_with_eos_gets_no_second_eos) {
    tokenizer *tok = load_tok();
    tmpdir d;
    tmp_make(&d);
    char path[512];
    tmp_write(path, sizeof path, &d, "eos.jsonl", "{\"text\": \"done" EOS "\"}\n");
    dataset *ds = NULL;
    pt_error err = {0};
    cr_assert_eq(dataset_open_jsonl(&ds, path, tok, NULL, &err), PT_OK, "%s", err.msg);
    dataset_example ex = {0};
    get(&ex, ds, 0);
    expect_decode(tok, &ex.seq, BOS "done" EOS);
    dataset_example_free(&ex);
    dataset_free(ds);
    tmp_remove(&d);
    tokenizer_free(tok);
}

Test(dataset_shapes, prompt_completion_masks_exactly_the_completion) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "prompt_completion.jsonl", NULL);
    cr_assert_eq(dataset_get_format(ds), DATASET_FORMAT_PROMPT_COMPLETION);
    const char *prompt[] = {BOS "What is 2 + 3?", BOS "Name a city in France.", BOS};
    const char *completion[] = {" The answer is 5." EOS, " Paris." EOS, "Once upon a time there was a fox." EOS};
    dataset_example ex = {0};
    for (size_t i = 0; i < 3; i++) {
        get(&ex, ds, i);
        char *p = decode(tok, ex.seq.ids, ex.seq.n_prompt);
        cr_assert_str_eq(p, prompt[i]);
        free(p);
        expect_masked(tok, &ex.seq, completion[i]);
        for (size_t t = 0; t < ex.seq.n; t++) cr_assert_eq(ex.seq.loss[t], t >= ex.seq.n_prompt, "token %zu", t);
    }
    dataset_example_free(&ex);
    dataset_free(ds);

    dataset_options o;
    dataset_options_default(&o);
    o.completion_only_loss = 0; /* loss on the prompt too */
    ds = open_fixture(tok, "prompt_completion.jsonl", &o);
    get(&ex, ds, 0);
    expect_masked(tok, &ex.seq, BOS "What is 2 + 3? The answer is 5." EOS);
    dataset_example_free(&ex);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_shapes, conversational_prompt_completion_uses_the_chat_template) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "prompt_completion_chat.jsonl", NULL);
    dataset_example ex = {0};
    get(&ex, ds, 0);
    expect_decode(tok, &ex.seq, BOS "You are terse." USER "What is 2 + 3?" ASSISTANT "5" EOS);
    expect_masked(tok, &ex.seq, "5" EOS);
    get(&ex, ds, 1);
    /* the earlier assistant turn belongs to the prompt: not trained on */
    expect_decode(tok, &ex.seq, BOS USER "Hi" ASSISTANT "Hello!" EOS USER "Capital of France?" ASSISTANT "Paris." EOS);
    expect_masked(tok, &ex.seq, "Paris." EOS);
    char *p = decode(tok, ex.seq.ids, ex.seq.n_prompt);
    cr_assert_str_eq(p, BOS USER "Hi" ASSISTANT "Hello!" EOS USER "Capital of France?" ASSISTANT);
    free(p);
    dataset_free(ds);

    dataset_options o;
    dataset_options_default(&o);
    o.completion_only_loss = 0;
    o.assistant_only_loss = true; /* every assistant turn, prompt ones included */
    ds = open_fixture(tok, "prompt_completion_chat.jsonl", &o);
    get(&ex, ds, 1);
    expect_masked(tok, &ex.seq, "Hello!" EOS "Paris." EOS);
    dataset_example_free(&ex);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_shapes, messages_all_tokens_or_assistant_only) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "messages.jsonl", NULL);
    cr_assert_eq(dataset_get_format(ds), DATASET_FORMAT_MESSAGES);
    dataset_example ex = {0};
    get(&ex, ds, 1);
    const char *full =
        BOS "Answer briefly." USER "Reverse abc." ASSISTANT "cba" EOS USER "And xyz?" ASSISTANT "zyx" EOS;
    expect_decode(tok, &ex.seq, full);
    expect_masked(tok, &ex.seq, full); /* TRL's default: loss on every token */
    dataset_free(ds);

    dataset_options o;
    dataset_options_default(&o);
    o.assistant_only_loss = true;
    ds = open_fixture(tok, "messages.jsonl", &o);
    get(&ex, ds, 0);
    expect_masked(tok, &ex.seq, "1 2 3" EOS);
    get(&ex, ds, 1);
    expect_masked(tok, &ex.seq, "cba" EOS "zyx" EOS);
    /* two separate runs of masked tokens, one per assistant message */
    int runs = 0;
    for (size_t t = 0; t < ex.seq.n; t++) runs += ex.seq.loss[t] && (t == 0 || !ex.seq.loss[t - 1]);
    cr_assert_eq(runs, 2);
    dataset_example_free(&ex);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_shapes, chat_format_option_plain_and_r1_think) {
    tokenizer *tok = load_tok();
    dataset_options o;
    dataset_options_default(&o);
    o.chat_format = "plain";
    o.assistant_only_loss = true;
    dataset *ds = open_fixture(tok, "messages.jsonl", &o);
    dataset_example ex = {0};
    get(&ex, ds, 0);
    expect_decode(tok, &ex.seq, BOS "Sort 3 1 2.\n\n1 2 3" EOS);
    expect_masked(tok, &ex.seq, "1 2 3" EOS);
    dataset_free(ds);

    /* deepseek-r1 drops the reasoning of assistant turns unless keep_final_think (last turn) */
    tmpdir d;
    tmp_make(&d);
    char path[512];
    tmp_write(path, sizeof path, &d, "r1.jsonl",
              "{\"messages\": [{\"role\": \"user\", \"content\": \"1+1?\"}, {\"role\": \"assistant\", "
              "\"content\": \"<think>\\nadd</think>2\"}]}\n");
    o.chat_format = "deepseek-r1";
    pt_error err = {0};
    cr_assert_eq(dataset_open_jsonl(&ds, path, tok, &o, &err), PT_OK, "%s", err.msg);
    get(&ex, ds, 0);
    expect_decode(tok, &ex.seq, BOS USER "1+1?" ASSISTANT "2" EOS);
    expect_masked(tok, &ex.seq, "2" EOS);
    dataset_free(ds);
    o.keep_final_think = true;
    cr_assert_eq(dataset_open_jsonl(&ds, path, tok, &o, &err), PT_OK, "%s", err.msg);
    get(&ex, ds, 0);
    expect_masked(tok, &ex.seq, "<think>\nadd</think>2" EOS);
    dataset_example_free(&ex);
    dataset_free(ds);
    tmp_remove(&d);
    tokenizer_free(tok);
}

Test(dataset_shapes, grpo_prompt_keeps_every_extra_column_verbatim) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "grpo.jsonl", NULL);
    cr_assert_eq(dataset_get_format(ds), DATASET_FORMAT_PROMPT);
    dataset_example ex = {0};
    get(&ex, ds, 0);
    cr_assert_str_eq(ex.prompt_text, "Using 3, 5 and 7, reach 22.");
    cr_assert_str_eq(ex.prompt_json, "\"Using 3, 5 and 7, reach 22.\"");
    expect_decode(tok, &ex.seq, BOS "Using 3, 5 and 7, reach 22."); /* BOS + text, as SFT encodes a prompt */
    for (size_t t = 0; t < ex.seq.n; t++) cr_assert_eq(ex.seq.loss[t], 0);
    const char *names0[] = {"numbers", "target", "answer", "meta", "ok", "note"};
    const char *json0[] = {"[3, 5,  7]", "22", "\"3*5+7\"",
                           "{\"difficulty\": 1.50, \"tags\": [\"countdown\", \"easy\"]}", "true", "null"};
    cr_assert_eq(ex.n_columns, 6);
    for (size_t c = 0; c < 6; c++) {
        cr_assert_str_eq(ex.columns[c].name, names0[c]);
        cr_assert_str_eq(ex.columns[c].json, json0[c]);
    }
    get(&ex, ds, 1);
    const char *names1[] = {"answer", "target", "numbers", "meta", "ok", "note"};
    const char *json1[] = {"\"408\"", "4.08e2", "[]", "{}", "false",
                           "\"unicode: \\u00e9 \u2713 \\\"quoted\\\" {not: an object}\""};
    cr_assert_eq(ex.n_columns, 6);
    for (size_t c = 0; c < 6; c++) {
        cr_assert_str_eq(ex.columns[c].name, names1[c]);
        cr_assert_str_eq(ex.columns[c].json, json1[c]);
    }
    dataset_example_free(&ex);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_shapes, grpo_conversational_prompt_ends_with_the_generation_prompt) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "grpo_chat.jsonl", NULL);
    dataset_example ex = {0};
    get(&ex, ds, 0);
    const char *want = BOS "Think step by step." USER "Compute 6 * 7." ASSISTANT;
    cr_assert_str_eq(ex.prompt_text, want);
    expect_decode(tok, &ex.seq, want);
    cr_assert_eq(ex.n_columns, 1);
    cr_assert_str_eq(ex.columns[0].name, "answer");
    cr_assert_str_eq(ex.columns[0].json, "\"42\"");
    cr_assert_eq(ex.prompt_json[0], '[');
    dataset_example_free(&ex);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_shapes, preference_pairs) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "preference.jsonl", NULL);
    cr_assert_eq(dataset_get_format(ds), DATASET_FORMAT_PREFERENCE);
    dataset_example ex = {0};
    get(&ex, ds, 0);
    expect_decode(tok, &ex.seq, BOS "The sky is blue." EOS);
    expect_masked(tok, &ex.seq, " blue." EOS);
    expect_decode(tok, &ex.rejected, BOS "The sky is green." EOS);
    expect_masked(tok, &ex.rejected, " green." EOS);
    get(&ex, ds, 1);
    expect_decode(tok, &ex.seq, BOS USER "2 + 2 =" ASSISTANT "4" EOS);
    expect_masked(tok, &ex.seq, "4" EOS);
    expect_masked(tok, &ex.rejected, "5" EOS);
    dataset_example_free(&ex);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_shapes, explicit_format_and_parsers) {
    dataset_format f;
    dataset_truncation t;
    dataset_on_bad b;
    pt_error err = {0};
    cr_assert_eq(dataset_format_parse(&f, "prompt", &err), PT_OK);
    cr_assert_eq(f, DATASET_FORMAT_PROMPT);
    cr_assert_eq(dataset_truncation_parse(&t, "left", &err), PT_OK);
    cr_assert_eq(t, DATASET_TRUNCATE_LEFT);
    cr_assert_eq(dataset_on_bad_parse(&b, "skip", &err), PT_OK);
    cr_assert_eq(b, DATASET_ON_BAD_SKIP);
    cr_assert_eq(dataset_format_parse(&f, "sharegpt", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "\"sharegpt\" is not one of: auto, text, prompt_completion, messages, prompt, "
                              "preference"),
              "%s", err.msg);

    /* A GRPO file with a reference "completion" column is detected as prompt_completion unless
     * the format says prompt; then "completion" is one more column. */
    tokenizer *tok = load_tok();
    dataset_options o;
    dataset_options_default(&o);
    o.format = DATASET_FORMAT_PROMPT;
    o.on_bad_line = DATASET_ON_BAD_SKIP; /* line 3's prompt is empty: nothing to sample from */
    dataset *ds = open_fixture(tok, "prompt_completion.jsonl", &o);
    cr_assert_eq(dataset_get_format(ds), DATASET_FORMAT_PROMPT);
    cr_assert_eq(dataset_size(ds), 2);
    cr_assert_eq(dataset_skip_stats(ds)->by_reason[DATASET_BAD_EMPTY], 1);
    dataset_example ex = {0};
    get(&ex, ds, 1);
    cr_assert_eq(ex.n_columns, 2);
    cr_assert_str_eq(ex.columns[0].name, "completion");
    cr_assert_str_eq(ex.columns[0].json, "\" Paris.\"");
    cr_assert_str_eq(ex.columns[1].json, "7");
    dataset_example_free(&ex);
    dataset_free(ds);
    tokenizer_free(tok);
}

/* ------------------------------------------------------------------------------- bad records */

Test(dataset_bad, each_case_names_file_line_and_field) {
    tokenizer *tok = load_tok();
    char good16[2048] = "";
    for (int i = 0; i < 16; i++) strcat(good16, "{\"prompt\": \"p\", \"completion\": \" c\"}\n");
    char content[4096];
    snprintf(content, sizeof content, "%s{\"prompt\": \"p\", \"completion\": 17}\n", good16);
    expect_open_error(tok, content, NULL, PT_ERR_FORMAT,
                      "train.jsonl:17: field 'completion': expected a string, got number");

    static const struct {
        const char *content, *want;
    } cases[] = {
        {"{\"text\": \"a\"}\n{\"text\": \"a\"\n", "train.jsonl:2: malformed JSON at column 13"},
        {"[\"text\"]\n", "train.jsonl:1: expected a JSON object per line, got list"},
        {"{\"text\": \"a\"} {\"text\": \"b\"}\n", "train.jsonl:1: malformed JSON at column 15"},
        {"{\"prompt\": \"p\", \"completion\": \" c\"}\n{\"prompt\": \"p\"}\n",
         "train.jsonl:2: field 'completion': missing"},
        {"{\"prompt\": \"p\", \"completion\": \"\"}\n", "train.jsonl:1: field 'completion': empty string"},
        {"{\"text\": \"\"}\n", "train.jsonl:1: field 'text': empty string"},
        {"{\"text\": null}\n", "train.jsonl:1: field 'text': expected a string, got null"},
        {"{\"messages\": []}\n", "train.jsonl:1: field 'messages': empty list of messages"},
        {"{\"messages\": \"hi\"}\n", "train.jsonl:1: field 'messages': expected a list of messages, got string"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": 3}]}\n",
         "train.jsonl:1: field 'messages[0].content': expected a string, got number"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"content\": \"b\"}]}\n",
         "train.jsonl:1: field 'messages[1].role': missing"},
        {"{\"messages\": [\"hello\"]}\n",
         "train.jsonl:1: field 'messages[0]': expected a message object with role and content, got string"},
        {"{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}\n",
         "train.jsonl:1: field 'messages[0].role': role \"tool\" is not supported by the native chat templates"},
        {"{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"completion\": \"a\"}\n",
         "train.jsonl:1: field 'completion': expected a list of messages (the prompt is a list of messages), got "
         "string"},
        {"{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"completion\": [{\"role\": \"user\", \"content\": "
         "\"a\"}]}\n",
         "train.jsonl:1: field 'completion': no assistant message"},
        {"{\"prompt\": 5, \"completion\": \"a\"}\n",
         "train.jsonl:1: field 'prompt': expected a string or a list of messages, got number"},
        {"{\"text\": \"ab\xC3(\"}\n",
         "train.jsonl:1: field 'text': invalid UTF-8 (byte 0xC3 at offset 2 of the string)"},
        {"{\"text\": \"\xC0\xAF\"}\n", "train.jsonl:1: field 'text': invalid UTF-8 (byte 0xC0 at offset 0"},
        {"{\"text\": \"x\xED\xA0\x80\"}\n", "train.jsonl:1: field 'text': invalid UTF-8 (byte 0xED at offset 1"},
        {"{\"text\": \"\xF4\x90\x80\x80\"}\n", "train.jsonl:1: field 'text': invalid UTF-8 (byte 0xF4 at offset 0"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"ok\"}, "
         "{\"role\": \"assistant\", \"content\": \"\xFF\"}]}\n",
         "train.jsonl:1: field 'messages[1].content': invalid UTF-8 (byte 0xFF"},
        {"{\"text\": \"a\", \"meta\": {\"k\xFE\": 1}}\n",
         "train.jsonl:1: field 'meta.(a key)': a key is not valid UTF-8"},
        {"{\"text\": \"a\\u0000b\"}\n", "train.jsonl:1: a string holds \\u0000 (NUL)"},
        {"{\"foo\": 1}\n", "train.jsonl:1: no dataset shape fits this record"},
        {"", "train.jsonl holds no usable records"},
        {"\n  \n", "train.jsonl holds no usable records"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_open_error(tok, cases[i].content, NULL, PT_ERR_FORMAT, cases[i].want);
    /* a NUL byte inside a line (strlen would stop at it, so written separately) */
    tmpdir d;
    tmp_make(&d);
    char path[512];
    snprintf(path, sizeof path, "%s/train.jsonl", d.path);
    FILE *f = fopen(path, "wb");
    fwrite("{\"text\": \"a\0b\"}\n", 1, 16, f);
    fclose(f);
    dataset *ds = NULL;
    pt_error err = {0};
    cr_assert_eq(dataset_open_jsonl(&ds, path, tok, NULL, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "train.jsonl:1: malformed JSON: the line holds a NUL byte at column 12"), "%s", err.msg);
    tmp_remove(&d);
    tokenizer_free(tok);
}

Test(dataset_bad, mixed_shapes_are_an_error_even_when_skipping) {
    tokenizer *tok = load_tok();
    const char *mixed = "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"prompt\": \"p\", \"completion\": \" c\"}\n";
    const char *want = "train.jsonl:3: the record has the shape 'prompt_completion', but the dataset's shape is 'text' "
                       "(detected from line 1); a dataset holds one shape";
    expect_open_error(tok, mixed, NULL, PT_ERR_FORMAT, want);
    dataset_options o;
    dataset_options_default(&o);
    o.on_bad_line = DATASET_ON_BAD_SKIP;
    expect_open_error(tok, mixed, &o, PT_ERR_FORMAT, want);
    o.format = DATASET_FORMAT_PROMPT;
    expect_open_error(tok, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n", &o, PT_ERR_FORMAT,
                      "train.jsonl:1: the record has the shape 'messages', but the dataset's shape is 'prompt' (set by "
                      "the format option)");
    tokenizer_free(tok);
}

Test(dataset_bad, over_long_under_truncation_error) {
    tokenizer *tok = load_tok();
    dataset_options o;
    dataset_options_default(&o);
    o.max_length = 8;
    o.truncation = DATASET_TRUNCATE_ERROR;
    /* BOS + 12 words ("w0 w1 ..." are at least one token each) + EOS > 8 */
    expect_open_error(tok, "{\"text\": \"a b c d e f g h i j k l\"}\n", &o, PT_ERR_FORMAT,
                      "train.jsonl:1: field 'text': the example is ");
    expect_open_error(tok, "{\"text\": \"a b c d e f g h i j k l\"}\n", &o, PT_ERR_FORMAT,
                      " tokens, over max_length 8 (truncation: error)");
    expect_open_error(tok, "{\"prompt\": \"q\", \"completion\": \" a b c d e f g h i j k l\"}\n", &o, PT_ERR_FORMAT,
                      "train.jsonl:1: field 'completion': the example is ");
    tokenizer_free(tok);
}

Test(dataset_bad, skip_mode_counts_each_reason_and_reports_it) {
    tokenizer *tok = load_tok();
    dataset_options o;
    dataset_options_default(&o);
    o.on_bad_line = DATASET_ON_BAD_SKIP;
    o.max_length = 24;
    o.truncation = DATASET_TRUNCATE_ERROR;
    dataset *ds = open_fixture(tok, "bad_lines.jsonl", &o);
    cr_assert_eq(dataset_size(ds), 2);
    cr_assert_eq(dataset_line(ds, 0), 1);
    cr_assert_eq(dataset_line(ds, 1), 8);
    const dataset_skips *s = dataset_skip_stats(ds);
    cr_assert_eq(s->total, 8);
    cr_assert_eq(s->by_reason[DATASET_BAD_JSON], 2);
    cr_assert_eq(s->by_reason[DATASET_BAD_TYPE], 2);
    cr_assert_eq(s->by_reason[DATASET_BAD_MISSING], 1);
    cr_assert_eq(s->by_reason[DATASET_BAD_EMPTY], 1);
    cr_assert_eq(s->by_reason[DATASET_BAD_UTF8], 1);
    cr_assert_eq(s->by_reason[DATASET_BAD_TOO_LONG], 1);
    cr_assert_eq(s->by_reason[DATASET_BAD_MESSAGE], 0);
    cr_assert_eq(s->blank_lines, 1);
    const char *first_type = s->first[DATASET_BAD_TYPE], *first_json = s->first[DATASET_BAD_JSON];
    cr_assert(strstr(first_type, "bad_lines.jsonl:2: field 'completion': expected a string, got number"), "%s",
              first_type);
    cr_assert(strstr(first_json, "bad_lines.jsonl:3: malformed JSON"), "%s", first_json);
    cr_assert(strstr(s->first[DATASET_BAD_TOO_LONG], "bad_lines.jsonl:10: field 'completion'"), "%s",
              s->first[DATASET_BAD_TOO_LONG]);
    char report[4096];
    dataset_skip_report(report, sizeof report, ds);
    cr_assert(strstr(report, "bad_lines.jsonl: skipped 8 of 10 records: 2 malformed JSON (first: "), "%s", report);
    cr_assert(strstr(report, "2 wrong type (first: "), "%s", report);
    cr_assert(strstr(report, "1 invalid UTF-8 (first: "), "%s", report);
    cr_assert(strstr(report, "bad_lines.jsonl:7: field 'completion': invalid UTF-8"), "%s", report);
    cr_assert(strstr(report, "; 1 blank line ignored"), "%s", report);
    /* the kept records read back correctly */
    dataset_example ex = {0};
    get(&ex, ds, 1);
    expect_masked(tok, &ex.seq, " j" EOS);
    dataset_example_free(&ex);
    dataset_free(ds);

    /* error mode stops at the first bad line */
    dataset_options_default(&o);
    char path[1024];
    pt_error err = {0};
    cr_assert_eq(dataset_open_jsonl(&ds, fixture_path(path, sizeof path, "datasets/bad_lines.jsonl"), tok, &o, &err),
                 PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "bad_lines.jsonl:2: field 'completion': expected a string, got number (set on_bad_line "
                              "to skip"),
              "%s", err.msg);
    tokenizer_free(tok);
}

Test(dataset_bad, file_changed_after_opening_is_detected) {
    tokenizer *tok = load_tok();
    tmpdir d;
    tmp_make(&d);
    char path[512];
    tmp_write(path, sizeof path, &d, "train.jsonl", "{\"text\": \"alpha beta\"}\n{\"text\": \"gamma\"}\n");
    dataset *ds = NULL;
    pt_error err = {0};
    cr_assert_eq(dataset_open_jsonl(&ds, path, tok, NULL, &err), PT_OK, "%s", err.msg);
    /* same length, so the index still points at a whole line */
    tmp_write(path, sizeof path, &d, "train.jsonl", "{\"text\": \"alpha beta\"}\n{\"text\": 1234567}\n");
    dataset_example ex = {0};
    cr_assert_eq(dataset_get(&ex, ds, 0, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(dataset_get(&ex, ds, 1, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "changed after it was opened: "), "%s", err.msg);
    cr_assert(strstr(err.msg, "train.jsonl:2: field 'text': expected a string, got number"), "%s", err.msg);
    /* same shape, other text: the token count no longer matches the index */
    tmp_write(path, sizeof path, &d, "train.jsonl", "{\"text\": \"alpha beta\"}\n{\"text\": \"g a m\"}\n");
    cr_assert_eq(dataset_get(&ex, ds, 1, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "train.jsonl:2: now "), "%s", err.msg);
    /* shorter */
    tmp_write(path, sizeof path, &d, "train.jsonl", "{\"text\": \"alpha beta\"}\n");
    cr_assert_eq(dataset_get(&ex, ds, 1, &err), PT_ERR_IO);
    cr_assert(strstr(err.msg, "train.jsonl:2: cannot re-read the record (end of file); was the file changed"), "%s",
              err.msg);
    cr_assert_eq(dataset_get(&ex, ds, 2, &err), PT_ERR_INVALID);
    dataset_example_free(&ex);
    dataset_free(ds);
    tmp_remove(&d);
    tokenizer_free(tok);
}

Test(dataset_bad, configuration_errors) {
    tokenizer *tok = load_tok();
    dataset_options o;
    dataset_options_default(&o);
    o.assistant_only_loss = true;
    expect_open_error(tok, "{\"text\": \"a\"}\n", &o, PT_ERR_CONFIG,
                      "assistant_only_loss needs conversational data");
    expect_open_error(tok, "{\"prompt\": \"q\", \"completion\": \" a\"}\n", &o, PT_ERR_CONFIG,
                      "train.jsonl:1: assistant_only_loss needs conversational records, but field 'completion' is a "
                      "string");
    dataset_options_default(&o);
    o.chat_format = "chatml";
    expect_open_error(tok, "{\"text\": \"a\"}\n", &o, PT_ERR_CONFIG,
                      "chat template \"chatml\" is not supported; supported: deepseek-v3, deepseek-r1, plain");
    dataset *ds = NULL;
    pt_error err = {0};
    cr_assert_eq(dataset_open_jsonl(&ds, "/nonexistent/train.jsonl", tok, NULL, &err), PT_ERR_IO);
    cr_assert(strstr(err.msg, "cannot open dataset /nonexistent/train.jsonl"), "%s", err.msg);
    tokenizer_free(tok);
}

/* ------------------------------------------------------------------------------- truncation */

Test(dataset_truncation, right_left_and_masks) {
    tokenizer *tok = load_tok();
    dataset_options o;
    dataset_options_default(&o);
    o.max_length = 0;
    dataset *full = open_fixture(tok, "prompt_completion.jsonl", &o);
    dataset_example whole = {0}, ex = {0};
    get(&whole, full, 0);
    size_t n = whole.seq.n, np = whole.seq.n_prompt, k = n - 3;
    cr_assert(np > 3 && n - np > 3, "fixture too short: %zu tokens, %zu prompt", n, np);

    o.max_length = k;
    o.truncation = DATASET_TRUNCATE_RIGHT;
    dataset *ds = open_fixture(tok, "prompt_completion.jsonl", &o);
    get(&ex, ds, 0);
    cr_assert_eq(ex.seq.n, k);
    cr_assert_eq(ex.seq.truncated, 3);
    cr_assert_eq(ex.seq.n_prompt, np);
    cr_assert_arr_eq(ex.seq.ids, whole.seq.ids, k * sizeof(int32_t));
    cr_assert_arr_eq(ex.seq.loss, whole.seq.loss, k);
    cr_assert_eq(dataset_max_tokens(ds), k);
    dataset_free(ds);

    o.truncation = DATASET_TRUNCATE_LEFT;
    ds = open_fixture(tok, "prompt_completion.jsonl", &o);
    get(&ex, ds, 0);
    cr_assert_eq(ex.seq.n, k);
    cr_assert_eq(ex.seq.n_prompt, np - 3);
    cr_assert_arr_eq(ex.seq.ids, whole.seq.ids + 3, k * sizeof(int32_t));
    cr_assert_arr_eq(ex.seq.loss, whole.seq.loss + 3, k);
    dataset_free(ds);

    /* left truncation cutting into the completion: the prompt is gone, the mask follows */
    o.max_length = n - np - 1;
    ds = open_fixture(tok, "prompt_completion.jsonl", &o);
    get(&ex, ds, 0);
    cr_assert_eq(ex.seq.n_prompt, 0);
    for (size_t t = 0; t < ex.seq.n; t++) cr_assert_eq(ex.seq.loss[t], 1);
    cr_assert_arr_eq(ex.seq.ids, whole.seq.ids + np + 1, ex.seq.n * sizeof(int32_t));
    dataset_free(ds);

    /* a GRPO prompt defaults to left truncation (keep the question's end) */
    dataset_options_default(&o);
    o.max_length = 0;
    dataset *g = open_fixture(tok, "grpo.jsonl", &o);
    get(&whole, g, 0);
    dataset_free(g);
    o.max_length = 4;
    g = open_fixture(tok, "grpo.jsonl", &o);
    get(&ex, g, 0);
    cr_assert_eq(ex.seq.n, 4);
    cr_assert_arr_eq(ex.seq.ids, whole.seq.ids + whole.seq.n - 4, 4 * sizeof(int32_t));
    dataset_free(g);

    dataset_example_free(&whole);
    dataset_example_free(&ex);
    dataset_free(full);
    tokenizer_free(tok);
}

/* ------------------------------------------------------------------------------- SQLite */

static void sql_exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "");
}

static void make_rollout_db(char *path, size_t len, const tmpdir *d) {
    snprintf(path, len, "%s/run.db", d->path);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sql_exec(db, "CREATE TABLE rollouts (step INTEGER, prompt TEXT, completion TEXT, reward REAL, answer TEXT, "
                 "tests_json TEXT, extra BLOB)");
    sql_exec(db, "INSERT INTO rollouts VALUES (1, 'What is 2 + 3?', ' 5', 0.75, '5', "
                 "'[{\"in\": \"2 3\", \"out\": 5}]', NULL)");
    sql_exec(db, "INSERT INTO rollouts VALUES (1, 'What is 2 + 3?', ' 6', 0.0, '5', '[]', NULL)");
    sql_exec(db, "INSERT INTO rollouts VALUES (2, 'Say \"hi\".', ' hi\n', 1.0, NULL, ' {\"a\": [1, 2]} ', x'00ff')");
    sql_exec(db, "INSERT INTO rollouts VALUES (3, 'Bad', ' json', 1.0, 'x', '{not json', NULL)");
    sqlite3_close(db);
}

Test(dataset_sqlite, sft_set_from_stored_rollouts) {
    tokenizer *tok = load_tok();
    tmpdir d;
    tmp_make(&d);
    char db[512];
    make_rollout_db(db, sizeof db, &d);
    dataset *ds = NULL;
    pt_error err = {0};
    cr_assert_eq(dataset_open_sqlite(&ds, db, "SELECT prompt, completion FROM rollouts WHERE reward > 0.5 ORDER BY "
                                              "rowid",
                                     tok, NULL, &err),
                 PT_OK, "%s", err.msg);
    cr_assert_eq(dataset_get_format(ds), DATASET_FORMAT_PROMPT_COMPLETION);
    cr_assert_eq(dataset_size(ds), 3);
    dataset_example ex = {0};
    get(&ex, ds, 0);
    expect_decode(tok, &ex.seq, BOS "What is 2 + 3? 5" EOS);
    expect_masked(tok, &ex.seq, " 5" EOS);
    get(&ex, ds, 1);
    expect_decode(tok, &ex.seq, BOS "Say \"hi\". hi\n" EOS);
    cr_assert_eq(ex.line, 2);
    dataset_example_free(&ex);
    dataset_free(ds);
    tmp_remove(&d);
    tokenizer_free(tok);
}

Test(dataset_sqlite, grpo_columns_from_sql_types) {
    tokenizer *tok = load_tok();
    tmpdir d;
    tmp_make(&d);
    char db[512];
    make_rollout_db(db, sizeof db, &d);
    dataset_options o;
    dataset_options_default(&o);
    o.format = DATASET_FORMAT_PROMPT;
    o.on_bad_line = DATASET_ON_BAD_SKIP;
    dataset *ds = NULL;
    pt_error err = {0};
    cr_assert_eq(dataset_open_sqlite(&ds, db, "SELECT prompt, step, reward, answer, tests_json FROM rollouts ORDER BY "
                                              "rowid",
                                     tok, &o, &err),
                 PT_OK, "%s", err.msg);
    cr_assert_eq(dataset_size(ds), 3);
    const dataset_skips *s = dataset_skip_stats(ds);
    cr_assert_eq(s->total, 1);
    cr_assert(strstr(s->first[DATASET_BAD_JSON], "run.db:row 4: field 'tests_json': a *_json column must hold valid "
                                                 "JSON"),
              "%s", s->first[DATASET_BAD_JSON]);
    dataset_example ex = {0};
    get(&ex, ds, 0);
    cr_assert_str_eq(ex.prompt_text, "What is 2 + 3?");
    const char *names[] = {"step", "reward", "answer", "tests"};
    const char *json[] = {"1", "0.75", "\"5\"", "[{\"in\": \"2 3\", \"out\": 5}]"};
    cr_assert_eq(ex.n_columns, 4);
    for (int c = 0; c < 4; c++) {
        cr_assert_str_eq(ex.columns[c].name, names[c]);
        cr_assert_str_eq(ex.columns[c].json, json[c]);
    }
    get(&ex, ds, 2);
    cr_assert_str_eq(ex.prompt_text, "Say \"hi\".");
    cr_assert_str_eq(ex.columns[2].json, "null");
    cr_assert_str_eq(ex.columns[3].json, "{\"a\": [1, 2]}");
    cr_assert_eq(ex.line, 3);
    dataset_example_free(&ex);
    dataset_free(ds);

    /* a BLOB column is a bad row, named */
    o.on_bad_line = DATASET_ON_BAD_ERROR;
    cr_assert_eq(dataset_open_sqlite(&ds, db, "SELECT prompt, extra FROM rollouts WHERE step = 2", tok, &o, &err),
                 PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "run.db:row 1: field 'extra': BLOB columns are not supported"), "%s", err.msg);
    /* SQL errors */
    cr_assert_eq(dataset_open_sqlite(&ds, db, "SELECT nope FROM rollouts", tok, &o, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "the dataset query does not compile: no such column: nope"), "%s", err.msg);
    cr_assert_eq(dataset_open_sqlite(&ds, db, "SELECT prompt FROM rollouts; DELETE FROM rollouts", tok, &o, &err),
                 PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "exactly one SQL statement"), "%s", err.msg);
    cr_assert_eq(dataset_open_sqlite(&ds, db, "SELECT prompt FROM rollouts WHERE 0", tok, &o, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "holds no usable records"), "%s", err.msg);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/absent.db", d.path);
    cr_assert_eq(dataset_open_sqlite(&ds, missing, "SELECT 1", tok, &o, &err), PT_ERR_IO);
    cr_assert(strstr(err.msg, "cannot open the SQLite database"), "%s", err.msg);
    cr_assert_eq(access(missing, F_OK), -1, "opening read-only must not create the file");
    tmp_remove(&d);
    tokenizer_free(tok);
}

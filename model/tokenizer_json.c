/* tokenizer_json.c — Hugging Face tokenizer.json and tokenizer_config.json, read and written.
 *
 * Reading follows `tokenizers`' deserializer (tokenizer/serialization.rs): "version" must be
 * "1.0"; model.type "BPE" with "vocab" (text -> id) and "merges" (legacy "a b" strings or
 * ["a", "b"] pairs; rank = position; a pair listed twice keeps its last rank, as BPE::build's map
 * does; every part and the merged text must be in the vocabulary); added tokens get their ids as
 * AddedVocabulary::add_tokens assigns them (the model id when the content is in the vocabulary,
 * else the next id from the vocabulary size), so the "id" field is advisory exactly as there.
 * What posttrain cannot reproduce bit for bit is refused with PT_ERR_UNSUPPORTED naming the field
 * and what is supported: normalizers other than the identity, pre-tokenizers other than Split /
 * Digits / ByteLevel (ByteLevel last), BPE dropout, byte_fallback, subword prefixes/suffixes,
 * decoders other than ByteLevel, post-processors other than ByteLevel / TemplateProcessing.
 *
 * Writing produces what `tokenizers` writes: compact JSON, added tokens by id, the vocabulary by
 * id, merges as pairs by rank; the normalizer, pre-tokenizer, post-processor and decoder sections
 * are written back as they were read (or as the trainer built them).
 */
#include "model/tokenizer_impl.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* GPT-2's pre-tokenizer regex, used by ByteLevel(use_regex=true). */
static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ------------------------------------------------------------------------------- files */

pt_status tok_read_file(char **out, size_t *len, const char *path, pt_error *err) {
    int fd;
    PT_CHECK_ERRNO(fd = open(path, O_RDONLY | O_CLOEXEC), err, "cannot open '%s'", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        PT_FAIL(err, PT_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory reading '%s' (%zu bytes)", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            PT_FAIL(err, PT_ERR_IO, "cannot read '%s': %s", path, strerror(e));
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return PT_OK;
}

pt_status tok_write_file_atomic(const char *path, const char *data, size_t len, pt_error *err) {
    char tmp[4096];
    int w = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    PT_CHECK(w > 0 && (size_t)w < sizeof tmp, err, PT_ERR_INVALID, "path too long: '%s'", path);
    int fd;
    PT_CHECK_ERRNO(fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), err, "cannot create '%s'", tmp);
    size_t done = 0;
    while (done < len) {
        ssize_t r = write(fd, data + done, len - done);
        if (r < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            PT_FAIL(err, PT_ERR_IO, "cannot write '%s': %s", tmp, strerror(e));
        }
        done += (size_t)r;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        PT_FAIL(err, PT_ERR_IO, "cannot flush '%s': %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        PT_FAIL(err, PT_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
    }
    return PT_OK;
}

/* Parse JSON; on failure the message gives line:column of the first bad byte. */
static pt_status parse_json(cJSON **out, const char *text, size_t len, const char *name, pt_error *err) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0, line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        PT_FAIL(err, PT_ERR_FORMAT, "%s:%zu:%zu: not valid JSON near \"%.24s\"; the file is truncated or damaged",
                name, line, col, text + off);
    }
    *out = root;
    return PT_OK;
}

/* ------------------------------------------------------------------------------- field access */

static const cJSON *field(const cJSON *obj, const char *key) {
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static bool is_null_or_absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

static pt_status get_bool(bool *out, const cJSON *obj, const char *key, bool dflt, const char *name, const char *path,
                          pt_error *err) {
    const cJSON *v = field(obj, key);
    if (is_null_or_absent(v)) {
        *out = dflt;
        return PT_OK;
    }
    PT_CHECK(cJSON_IsBool(v), err, PT_ERR_FORMAT, "%s: %s.%s must be true or false", name, path, key);
    *out = cJSON_IsTrue(v);
    return PT_OK;
}

static pt_status get_id(int32_t *out, const cJSON *v, const char *name, const char *what, pt_error *err) {
    PT_CHECK(cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < (double)(1 << 24) &&
                 v->valuedouble == (double)(int32_t)v->valuedouble,
             err, PT_ERR_FORMAT, "%s: %s must be an integer id in [0, 2^24)", name, what);
    *out = (int32_t)v->valuedouble;
    return PT_OK;
}

/* ------------------------------------------------------------------------------- model */

static pt_status set_token(tokenizer *tok, int32_t id, const char *text, uint8_t flag, pt_error *err) {
    if (!tok->tok_str[id]) {
        tok->tok_str[id] = strdup(text);
        PT_CHECK_ALLOC(tok->tok_str[id], err, strlen(text) + 1);
    }
    tok->tok_flags[id] |= flag;
    return PT_OK;
}

static pt_status parse_model(tokenizer *tok, const cJSON *root, pt_error *err) {
    const char *name = tok->name;
    const cJSON *model = field(root, "model");
    PT_CHECK(cJSON_IsObject(model), err, PT_ERR_FORMAT,
             "%s: \"model\" is missing or not an object; this is not a tokenizers tokenizer.json", name);
    const cJSON *type = field(model, "type");
    if (!is_null_or_absent(type)) {
        PT_CHECK(cJSON_IsString(type), err, PT_ERR_FORMAT, "%s: model.type must be a string", name);
        if (strcmp(type->valuestring, "BPE") != 0)
            PT_FAIL(err, PT_ERR_UNSUPPORTED,
                    "%s: model.type \"%s\" is not supported; posttrain reads byte-level BPE tokenizers (model.type "
                    "\"BPE\", as DeepSeek-V3)",
                    name, type->valuestring);
    } else {
        PT_CHECK(field(model, "merges"), err, PT_ERR_FORMAT, "%s: model.type is missing and model has no merges", name);
    }
    const cJSON *v = field(model, "dropout");
    PT_CHECK(is_null_or_absent(v) || (cJSON_IsNumber(v) && v->valuedouble == 0), err, PT_ERR_UNSUPPORTED,
             "%s: model.dropout must be null: BPE dropout makes encoding random", name);
    PT_TRY(get_bool(&tok->fuse_unk, model, "fuse_unk", false, name, "model", err));
    PT_TRY(get_bool(&tok->ignore_merges, model, "ignore_merges", false, name, "model", err));
    bool byte_fallback;
    PT_TRY(get_bool(&byte_fallback, model, "byte_fallback", false, name, "model", err));
    PT_CHECK(!byte_fallback, err, PT_ERR_UNSUPPORTED,
             "%s: model.byte_fallback true (SentencePiece-style <0xNN> tokens) is not supported; byte-level BPE needs "
             "no fallback", name);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = field(model, affixes[i]);
        PT_CHECK(is_null_or_absent(v) || (cJSON_IsString(v) && !v->valuestring[0]), err, PT_ERR_UNSUPPORTED,
                 "%s: model.%s is not supported (must be null)", name, affixes[i]);
    }

    const cJSON *vocab = field(model, "vocab");
    PT_CHECK(cJSON_IsObject(vocab), err, PT_ERR_FORMAT, "%s: model.vocab is missing or not an object", name);
    const cJSON *added = field(root, "added_tokens");
    PT_CHECK(is_null_or_absent(added) || cJSON_IsArray(added), err, PT_ERR_FORMAT,
             "%s: added_tokens must be an array", name);

    /* ids: the vocabulary's, then added tokens numbered from the vocabulary size */
    size_t n_vocab = 0, n_ids = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id;
        char what[160];
        snprintf(what, sizeof what, "model.vocab[\"%.100s\"]", e->string);
        PT_TRY(get_id(&id, e, name, what, err));
        if ((size_t)id + 1 > n_ids) n_ids = (size_t)id + 1;
        n_vocab++;
    }
    size_t n_added = added ? (size_t)cJSON_GetArraySize(added) : 0;
    n_ids = n_ids > n_vocab + n_added ? n_ids : n_vocab + n_added;
    tok->tok_str = calloc(n_ids ? n_ids : 1, sizeof *tok->tok_str);
    tok->tok_flags = calloc(n_ids ? n_ids : 1, 1);
    PT_CHECK_ALLOC(tok->tok_str, err, n_ids * sizeof *tok->tok_str);
    PT_CHECK_ALLOC(tok->tok_flags, err, n_ids);
    tok->n_ids = n_ids;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        PT_CHECK(!tok->tok_str[id], err, PT_ERR_FORMAT, "%s: model.vocab gives id %d to both \"%s\" and \"%s\"", name,
                 (int)id, tok->tok_str[id], e->string);
        PT_TRY(set_token(tok, id, e->string, TOKF_MODEL, err));
        int32_t old;
        int r = tok_strmap_put(&tok->vocab, tok->tok_str[id], strlen(tok->tok_str[id]), id, &old);
        PT_CHECK(r >= 0, err, PT_ERR_NOMEM, "out of memory building the vocabulary of %s", name);
        PT_CHECK(r == 0, err, PT_ERR_FORMAT, "%s: model.vocab lists \"%s\" twice", name, e->string);
    }

    /* added tokens: AddedVocabulary::add_tokens */
    int32_t next_id = (int32_t)n_vocab;
    if (n_added) {
        tok->added = calloc(n_added, sizeof *tok->added);
        PT_CHECK_ALLOC(tok->added, err, n_added * sizeof *tok->added);
    }
    size_t ai = 0;
    cJSON_ArrayForEach(e, added) {
        char path[64];
        snprintf(path, sizeof path, "added_tokens[%zu]", ai);
        const cJSON *content = field(e, "content");
        PT_CHECK(cJSON_IsString(content), err, PT_ERR_FORMAT, "%s: %s.content must be a string", name, path);
        tok_added a = {0};
        PT_TRY(get_bool(&a.special, e, "special", false, name, path, err));
        PT_TRY(get_bool(&a.lstrip, e, "lstrip", false, name, path, err));
        PT_TRY(get_bool(&a.rstrip, e, "rstrip", false, name, path, err));
        PT_TRY(get_bool(&a.single_word, e, "single_word", false, name, path, err));
        PT_TRY(get_bool(&a.normalized, e, "normalized", !a.special, name, path, err));
        a.len = strlen(content->valuestring);
        if (a.len == 0) continue;
        int32_t prev = tok_strmap_get(&tok->added_map, content->valuestring, a.len);
        if (prev >= 0) { /* listed again: same id, the later flags win */
            a.content = tok->added[prev].content;
            a.id = tok->added[prev].id;
            tok->added[prev] = a;
        } else {
            a.content = strdup(content->valuestring);
            PT_CHECK_ALLOC(a.content, err, a.len + 1);
            int32_t id = tok_strmap_get(&tok->vocab, a.content, a.len);
            a.id = id >= 0 ? id : next_id++;
            tok->added[ai] = a;
            PT_CHECK(tok_strmap_put(&tok->added_map, a.content, a.len, (int32_t)ai, NULL) >= 0, err, PT_ERR_NOMEM,
                     "out of memory reading %s", path);
            ai++;
        }
    }
    tok->n_added = ai;
    for (size_t i = 0; i < tok->n_added; i++) {
        tok_added *a = &tok->added[i];
        PT_TRY(set_token(tok, a->id, a->content, TOKF_ADDED, err));
        if (a->special) tok->tok_flags[a->id] |= TOKF_SPECIAL;
    }
    while (tok->n_ids > 0 && !tok->tok_str[tok->n_ids - 1]) tok->n_ids--;

    const cJSON *unk = field(model, "unk_token");
    tok->unk_id = -1;
    if (!is_null_or_absent(unk)) {
        PT_CHECK(cJSON_IsString(unk), err, PT_ERR_FORMAT, "%s: model.unk_token must be a string or null", name);
        tok->unk_id = tok_strmap_get(&tok->vocab, unk->valuestring, strlen(unk->valuestring));
        PT_CHECK(tok->unk_id >= 0, err, PT_ERR_FORMAT, "%s: model.unk_token \"%s\" is not in model.vocab", name,
                 unk->valuestring);
    }

    /* merges */
    const cJSON *merges = field(model, "merges");
    PT_CHECK(cJSON_IsArray(merges), err, PT_ERR_FORMAT, "%s: model.merges is missing or not an array", name);
    size_t nm = (size_t)cJSON_GetArraySize(merges);
    tok->merge_list = malloc((nm ? nm : 1) * sizeof *tok->merge_list);
    PT_CHECK_ALLOC(tok->merge_list, err, nm * sizeof *tok->merge_list);
    char *buf = NULL;
    size_t buf_cap = 0, r = 0;
    pt_status st = PT_OK;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(e)) { /* legacy "a b" */
            a = e->valuestring;
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                               "%s: model.merges[%zu] \"%s\" must be two tokens separated by one space", name, r, a);
                break;
            }
            la = (size_t)(sp - a);
            b = sp + 1;
            lb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            la = strlen(a);
            lb = strlen(b);
        } else {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                           "%s: model.merges[%zu] must be a string \"a b\" or a pair [\"a\", \"b\"]", name, r);
            break;
        }
        if (la + lb + 1 > buf_cap) {
            buf_cap = 2 * (la + lb + 1);
            char *nb = realloc(buf, buf_cap);
            if (!nb) {
                st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory reading merges of %s", name);
                break;
            }
            buf = nb;
        }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        buf[la + lb] = '\0';
        int32_t ia = tok_strmap_get(&tok->vocab, a, la), ib = tok_strmap_get(&tok->vocab, b, lb);
        int32_t in = tok_strmap_get(&tok->vocab, buf, la + lb);
        if (ia < 0 || ib < 0 || in < 0) {
            const char *miss = ia < 0 ? a : ib < 0 ? b : buf;
            int ml = (int)(ia < 0 ? la : ib < 0 ? lb : la + lb);
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                           "%s: model.merges[%zu] (\"%.*s\" + \"%.*s\") uses \"%.*s\", which is not in model.vocab; "
                           "the vocab and merges come from different tokenizers",
                           name, r, (int)la, a, (int)lb, b, ml, miss);
            break;
        }
        uint64_t *slot = tok_u64map_upsert(&tok->merges, tok_pair_key(ia, ib), 0);
        if (!slot) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory reading merges of %s", name);
            break;
        }
        *slot = (uint64_t)r << 32 | (uint32_t)in; /* a repeated pair keeps its last rank */
        tok->merge_list[r][0] = ia;
        tok->merge_list[r][1] = ib;
        r++;
    }
    free(buf);
    tok->n_merges = r;
    return st;
}

/* ------------------------------------------------------------------------------- pipeline sections */

static pt_status check_normalizer(const cJSON *n, const char *name, const char *path, pt_error *err) {
    if (is_null_or_absent(n)) return PT_OK;
    const cJSON *type = field(n, "type");
    PT_CHECK(cJSON_IsString(type), err, PT_ERR_FORMAT, "%s: %s.type must be a string", name, path);
    if (strcmp(type->valuestring, "Sequence") == 0) {
        const cJSON *list = field(n, "normalizers"), *e;
        PT_CHECK(cJSON_IsArray(list), err, PT_ERR_FORMAT, "%s: %s.normalizers must be an array", name, path);
        int i = 0;
        cJSON_ArrayForEach(e, list) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s.normalizers[%d]", path, i++);
            PT_TRY(check_normalizer(e, name, sub, err));
        }
        return PT_OK;
    }
    PT_FAIL(err, PT_ERR_UNSUPPORTED,
            "%s: %s \"%s\" is not supported; posttrain reads tokenizers without normalization (null or an empty "
            "Sequence, as DeepSeek-V3)",
            name, path, type->valuestring);
}

static pt_status add_step(tokenizer *tok, tok_step step, pt_error *err) {
    tok_step *s = realloc(tok->steps, (tok->n_steps + 1) * sizeof *s);
    if (!s) {
        tok_regex_free(&step.re);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory reading the pre-tokenizer");
    }
    tok->steps = s;
    s[tok->n_steps++] = step;
    return PT_OK;
}

static pt_status parse_pretok(tokenizer *tok, const cJSON *p, const char *path, pt_error *err) {
    const char *name = tok->name;
    const cJSON *type = field(p, "type");
    PT_CHECK(cJSON_IsString(type), err, PT_ERR_FORMAT, "%s: %s.type must be a string", name, path);
    const char *t = type->valuestring;
    if (strcmp(t, "Sequence") == 0) {
        const cJSON *list = field(p, "pretokenizers"), *e;
        PT_CHECK(cJSON_IsArray(list), err, PT_ERR_FORMAT, "%s: %s.pretokenizers must be an array", name, path);
        int i = 0;
        cJSON_ArrayForEach(e, list) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", path, i++);
            PT_TRY(parse_pretok(tok, e, sub, err));
        }
        return PT_OK;
    }
    tok_step step = {0};
    if (strcmp(t, "Split") == 0) {
        const cJSON *pat = field(p, "pattern"), *rx = field(pat, "Regex"), *str = field(pat, "String");
        PT_CHECK(cJSON_IsString(rx) || cJSON_IsString(str), err, PT_ERR_FORMAT,
                 "%s: %s.pattern must be {\"Regex\": ...} or {\"String\": ...}", name, path);
        const cJSON *beh = field(p, "behavior");
        static const char *const names[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        int b = -1;
        for (int i = 0; i < 5 && cJSON_IsString(beh); i++)
            if (strcmp(beh->valuestring, names[i]) == 0) b = i;
        PT_CHECK(b >= 0, err, PT_ERR_FORMAT,
                 "%s: %s.behavior must be one of Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous",
                 name, path);
        PT_TRY(get_bool(&step.invert, p, "invert", false, name, path, err));
        step.kind = TOK_STEP_SPLIT;
        step.behavior = (tok_split_behavior)b;
        char fld[200];
        snprintf(fld, sizeof fld, "%s.pattern.%s", path, rx ? "Regex" : "String");
        const char *pattern = rx ? rx->valuestring : str->valuestring;
        PT_TRY(tok_regex_compile(&step.re, pattern, strlen(pattern), !rx, name, fld, err));
    } else if (strcmp(t, "Digits") == 0) { /* char::is_numeric, one by one or in runs */
        bool individual;
        PT_TRY(get_bool(&individual, p, "individual_digits", false, name, path, err));
        step.kind = TOK_STEP_SPLIT;
        step.behavior = individual ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS;
        PT_TRY(tok_regex_compile(&step.re, "\\p{N}", 5, false, name, path, err));
    } else if (strcmp(t, "ByteLevel") == 0) {
        step.kind = TOK_STEP_BYTELEVEL;
        PT_TRY(get_bool(&step.add_prefix_space, p, "add_prefix_space", true, name, path, err));
        PT_TRY(get_bool(&step.use_regex, p, "use_regex", true, name, path, err));
        if (step.use_regex && !tok->gpt2_re.code)
            PT_TRY(tok_regex_compile(&tok->gpt2_re, GPT2_REGEX, sizeof GPT2_REGEX - 1, false, "builtin", "GPT-2", err));
    } else {
        PT_FAIL(err, PT_ERR_UNSUPPORTED,
                "%s: %s.type \"%s\" is not supported; supported pre-tokenizers: Sequence, Split, Digits, ByteLevel",
                name, path, t);
    }
    return add_step(tok, step, err);
}

static pt_status parse_post(tokenizer *tok, const cJSON *p, const char *path, pt_error *err) {
    const char *name = tok->name;
    if (is_null_or_absent(p)) return PT_OK;
    const cJSON *type = field(p, "type");
    PT_CHECK(cJSON_IsString(type), err, PT_ERR_FORMAT, "%s: %s.type must be a string", name, path);
    const char *t = type->valuestring;
    if (strcmp(t, "ByteLevel") == 0) return PT_OK; /* only trims offsets */
    if (strcmp(t, "Sequence") == 0) {
        const cJSON *list = field(p, "processors"), *e;
        PT_CHECK(cJSON_IsArray(list), err, PT_ERR_FORMAT, "%s: %s.processors must be an array", name, path);
        int i = 0;
        cJSON_ArrayForEach(e, list) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.processors[%d]", path, i++);
            PT_TRY(parse_post(tok, e, sub, err));
        }
        return PT_OK;
    }
    if (strcmp(t, "TemplateProcessing") != 0)
        PT_FAIL(err, PT_ERR_UNSUPPORTED,
                "%s: %s.type \"%s\" is not supported; supported post-processors: TemplateProcessing, ByteLevel, "
                "Sequence",
                name, path, t);
    const cJSON *single = field(p, "single"), *specials = field(p, "special_tokens"), *piece;
    PT_CHECK(cJSON_IsArray(single), err, PT_ERR_FORMAT, "%s: %s.single must be an array", name, path);
    bool seen_a = false;
    int i = 0;
    cJSON_ArrayForEach(piece, single) {
        const cJSON *sp = field(piece, "SpecialToken"), *sq = field(piece, "Sequence");
        if (sq) {
            const cJSON *sid = field(sq, "id");
            PT_CHECK(cJSON_IsString(sid) && strcmp(sid->valuestring, "A") == 0 && !seen_a, err, PT_ERR_FORMAT,
                     "%s: %s.single[%d]: a single-sequence template holds sequence A once", name, path, i);
            seen_a = true;
        } else {
            const cJSON *sid = field(sp, "id");
            PT_CHECK(cJSON_IsString(sid), err, PT_ERR_FORMAT,
                     "%s: %s.single[%d] must be {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": {\"id\": \"A\"}}",
                     name, path, i);
            const cJSON *ids = field(field(specials, sid->valuestring), "ids"), *x;
            PT_CHECK(cJSON_IsArray(ids), err, PT_ERR_FORMAT, "%s: %s.special_tokens has no ids for \"%s\"", name, path,
                     sid->valuestring);
            cJSON_ArrayForEach(x, ids) {
                int32_t id;
                char what[200];
                snprintf(what, sizeof what, "%s.special_tokens[\"%.80s\"].ids", path, sid->valuestring);
                PT_TRY(get_id(&id, x, name, what, err));
                PT_CHECK((size_t)id < tok->n_ids && tok->tok_str[id], err, PT_ERR_FORMAT,
                         "%s: %s: id %d is not in the vocabulary", name, what, (int)id);
                int32_t **arr = seen_a ? &tok->pp_suffix : &tok->pp_prefix;
                size_t *n = seen_a ? &tok->n_pp_suffix : &tok->n_pp_prefix;
                int32_t *g = realloc(*arr, (*n + 1) * sizeof *g);
                PT_CHECK_ALLOC(g, err, (*n + 1) * sizeof *g);
                g[(*n)++] = id;
                *arr = g;
            }
        }
        i++;
    }
    PT_CHECK(seen_a, err, PT_ERR_FORMAT, "%s: %s.single has no {\"Sequence\": {\"id\": \"A\"}}", name, path);
    return PT_OK;
}

static pt_status keep_section(cJSON **dst, const cJSON *root, const char *key, pt_error *err) {
    const cJSON *v = field(root, key);
    if (is_null_or_absent(v)) return PT_OK;
    *dst = cJSON_Duplicate(v, 1);
    PT_CHECK_ALLOC(*dst, err, (size_t)0);
    return PT_OK;
}

pt_status tok_from_cjson(tokenizer **out, const cJSON *root, const char *name, pt_error *err) {
    PT_CHECK(cJSON_IsObject(root), err, PT_ERR_FORMAT, "%s: the top level must be a JSON object", name);
    const cJSON *ver = field(root, "version");
    PT_CHECK(is_null_or_absent(ver) || (cJSON_IsString(ver) && strcmp(ver->valuestring, "1.0") == 0), err,
             PT_ERR_FORMAT, "%s: unknown tokenizer.json version (expected \"1.0\")", name);
    tokenizer *tok = calloc(1, sizeof *tok);
    PT_CHECK_ALLOC(tok, err, sizeof *tok);
    pt_status st = PT_OK;
    tok->name = strdup(name);
    if (!tok->name) {
        free(tok);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory");
    }
    PT_TRY_GOTO(st, parse_model(tok, root, err), fail);
    PT_TRY_GOTO(st, check_normalizer(field(root, "normalizer"), name, "normalizer", err), fail);
    const cJSON *pre = field(root, "pre_tokenizer");
    if (!is_null_or_absent(pre)) PT_TRY_GOTO(st, parse_pretok(tok, pre, "pre_tokenizer", err), fail);
    size_t nbl = 0;
    for (size_t i = 0; i < tok->n_steps; i++) nbl += tok->steps[i].kind == TOK_STEP_BYTELEVEL;
    if (nbl != 1 || tok->steps[tok->n_steps - 1].kind != TOK_STEP_BYTELEVEL) {
        st = error_set(err, PT_ERR_UNSUPPORTED, __FILE__, __LINE__,
                       "%s: pre_tokenizer must end with one ByteLevel step (byte-level BPE), found %zu ByteLevel "
                       "step(s)%s",
                       name, nbl, nbl == 1 ? " not at the end" : "");
        goto fail;
    }
    PT_TRY_GOTO(st, parse_post(tok, field(root, "post_processor"), "post_processor", err), fail);
    const cJSON *dec = field(root, "decoder"), *dt = field(dec, "type");
    if (!is_null_or_absent(dec) && !(cJSON_IsString(dt) && strcmp(dt->valuestring, "ByteLevel") == 0)) {
        st = error_set(err, PT_ERR_UNSUPPORTED, __FILE__, __LINE__,
                       "%s: decoder \"%s\" is not supported; byte-level BPE decodes with ByteLevel", name,
                       cJSON_IsString(dt) ? dt->valuestring : "?");
        goto fail;
    }
    PT_TRY_GOTO(st, keep_section(&tok->normalizer_json, root, "normalizer", err), fail);
    PT_TRY_GOTO(st, keep_section(&tok->pre_tokenizer_json, root, "pre_tokenizer", err), fail);
    PT_TRY_GOTO(st, keep_section(&tok->post_processor_json, root, "post_processor", err), fail);
    PT_TRY_GOTO(st, keep_section(&tok->decoder_json, root, "decoder", err), fail);
    PT_TRY_GOTO(st, tok_build_tables(tok, err), fail);
    *out = tok;
    return PT_OK;
fail:
    tokenizer_free(tok);
    return st;
}

/* ------------------------------------------------------------------------------- loading */

pt_status tokenizer_load_json(tokenizer **out, const char *json, size_t len, const char *name, pt_error *err) {
    cJSON *root;
    PT_TRY(parse_json(&root, json, len, name, err));
    pt_status st = tok_from_cjson(out, root, name, err);
    cJSON_Delete(root);
    return st;
}

static pt_status config_token(char **dst, const cJSON *cfg, const char *key, const char *name, pt_error *err) {
    const cJSON *v = field(cfg, key);
    if (is_null_or_absent(v)) return PT_OK;
    if (cJSON_IsObject(v)) v = field(v, "content"); /* {"__type": "AddedToken", "content": ...} */
    PT_CHECK(cJSON_IsString(v), err, PT_ERR_FORMAT, "%s: %s must be a string or an AddedToken object", name, key);
    free(*dst);
    *dst = strdup(v->valuestring);
    PT_CHECK_ALLOC(*dst, err, strlen(v->valuestring) + 1);
    return PT_OK;
}

static pt_status apply_config(tokenizer *tok, const char *text, size_t len, const char *name, pt_error *err) {
    cJSON *cfg;
    PT_TRY(parse_json(&cfg, text, len, name, err));
    tok->config_json = cfg;
    PT_CHECK(cJSON_IsObject(cfg), err, PT_ERR_FORMAT, "%s: the top level must be a JSON object", name);
    PT_TRY(config_token(&tok->bos_token, cfg, "bos_token", name, err));
    PT_TRY(config_token(&tok->eos_token, cfg, "eos_token", name, err));
    PT_TRY(config_token(&tok->pad_token, cfg, "pad_token", name, err));
    PT_TRY(get_bool(&tok->add_bos_token, cfg, "add_bos_token", false, name, "tokenizer_config", err));
    PT_TRY(get_bool(&tok->add_eos_token, cfg, "add_eos_token", false, name, "tokenizer_config", err));
    const cJSON *ct = field(cfg, "chat_template");
    if (cJSON_IsArray(ct)) { /* [{"name": ..., "template": ...}]: take "default" */
        const cJSON *e, *pick = NULL;
        cJSON_ArrayForEach(e, ct) {
            const cJSON *n = field(e, "name");
            if (!pick || (cJSON_IsString(n) && strcmp(n->valuestring, "default") == 0)) pick = e;
        }
        ct = field(pick, "template");
    }
    if (!is_null_or_absent(ct)) {
        PT_CHECK(cJSON_IsString(ct), err, PT_ERR_FORMAT, "%s: chat_template must be a string", name);
        PT_TRY(tokenizer_set_chat_template(tok, ct->valuestring, err));
    }
    for (int i = 0; i < 2; i++) {
        const char *t = i ? tok->eos_token : tok->bos_token;
        PT_CHECK(!t || tokenizer_token_to_id(tok, t, strlen(t)) >= 0, err, PT_ERR_FORMAT,
                 "%s: %s \"%s\" is not a token of the tokenizer", name, i ? "eos_token" : "bos_token", t);
    }
    return PT_OK;
}

pt_status tokenizer_load(tokenizer **out, const char *path, pt_error *err) {
    struct stat st;
    PT_CHECK_ERRNO(stat(path, &st), err, "cannot open tokenizer '%s'", path);
    char file[4096], cfg_path[4096], jinja[4096];
    bool dir = S_ISDIR(st.st_mode);
    int w = snprintf(file, sizeof file, dir ? "%s/tokenizer.json" : "%s", path);
    PT_CHECK(w > 0 && (size_t)w < sizeof file, err, PT_ERR_INVALID, "path too long: '%s'", path);
    char *text;
    size_t len;
    PT_TRY(tok_read_file(&text, &len, file, err));
    tokenizer *tok = NULL;
    pt_status s = tokenizer_load_json(&tok, text, len, file, err);
    free(text);
    if (s != PT_OK) return s;
    if (dir) {
        snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", path);
        snprintf(jinja, sizeof jinja, "%s/chat_template.jinja", path);
        if (access(cfg_path, F_OK) == 0) {
            s = tok_read_file(&text, &len, cfg_path, err);
            if (s == PT_OK) {
                s = apply_config(tok, text, len, cfg_path, err);
                free(text);
            }
        }
        if (s == PT_OK && !tok->chat_template && access(jinja, F_OK) == 0) {
            s = tok_read_file(&text, &len, jinja, err);
            if (s == PT_OK) {
                s = tokenizer_set_chat_template(tok, text, err);
                free(text);
            }
        }
        if (s != PT_OK) {
            tokenizer_free(tok);
            return s;
        }
    }
    *out = tok;
    return PT_OK;
}

/* ------------------------------------------------------------------------------- saving */

static cJSON *dup_or_null(const cJSON *v) { return v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull(); }

static int cmp_added_id(const void *a, const void *b) {
    const tok_added *x = *(const tok_added *const *)a, *y = *(const tok_added *const *)b;
    return (x->id > y->id) - (x->id < y->id);
}

static cJSON *build_json(const tokenizer *tok) {
    cJSON *root = cJSON_CreateObject(), *added = cJSON_CreateArray(), *model = cJSON_CreateObject();
    cJSON *vocab = cJSON_CreateObject(), *merges = cJSON_CreateArray();
    const tok_added **order = malloc((tok->n_added ? tok->n_added : 1) * sizeof *order);
    bool ok = root && added && model && vocab && merges && order;
    if (ok) {
        for (size_t i = 0; i < tok->n_added; i++) order[i] = &tok->added[i];
        qsort(order, tok->n_added, sizeof *order, cmp_added_id);
    }
    for (size_t i = 0; ok && i < tok->n_added; i++) {
        const tok_added *a = order[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddNumberToObject(o, "id", a->id) && cJSON_AddStringToObject(o, "content", a->content) &&
             cJSON_AddBoolToObject(o, "single_word", a->single_word) && cJSON_AddBoolToObject(o, "lstrip", a->lstrip) &&
             cJSON_AddBoolToObject(o, "rstrip", a->rstrip) && cJSON_AddBoolToObject(o, "normalized", a->normalized) &&
             cJSON_AddBoolToObject(o, "special", a->special) && cJSON_AddItemToArray(added, o);
        if (!ok) cJSON_Delete(o);
    }
    for (size_t id = 0; ok && id < tok->n_ids; id++)
        if (tok->tok_flags[id] & TOKF_MODEL) ok = cJSON_AddNumberToObject(vocab, tok->tok_str[id], (double)id) != NULL;
    for (size_t r = 0; ok && r < tok->n_merges; r++) {
        int32_t a = tok->merge_list[r][0], b = tok->merge_list[r][1];
        const uint64_t *v = tok_u64map_get(&tok->merges, tok_pair_key(a, b));
        if (!v || (*v >> 32) != r) continue; /* superseded by a later copy of the same pair */
        const char *pair[2] = {tok->tok_str[a], tok->tok_str[b]};
        cJSON *p = cJSON_CreateStringArray(pair, 2);
        ok = p && cJSON_AddItemToArray(merges, p);
        if (!ok) cJSON_Delete(p);
    }
    const char *unk = tok->unk_id >= 0 ? tok->tok_str[tok->unk_id] : NULL;
    ok = ok && cJSON_AddStringToObject(model, "type", "BPE") && cJSON_AddNullToObject(model, "dropout") &&
         (unk ? cJSON_AddStringToObject(model, "unk_token", unk) : cJSON_AddNullToObject(model, "unk_token")) &&
         cJSON_AddNullToObject(model, "continuing_subword_prefix") && cJSON_AddNullToObject(model, "end_of_word_suffix") &&
         cJSON_AddBoolToObject(model, "fuse_unk", tok->fuse_unk) && cJSON_AddBoolToObject(model, "byte_fallback", false) &&
         cJSON_AddBoolToObject(model, "ignore_merges", tok->ignore_merges);
    if (ok) {
        cJSON_AddItemToObject(model, "vocab", vocab);
        cJSON_AddItemToObject(model, "merges", merges);
        vocab = merges = NULL;
        ok = cJSON_AddStringToObject(root, "version", "1.0") && cJSON_AddNullToObject(root, "truncation") &&
             cJSON_AddNullToObject(root, "padding");
        if (ok) {
            cJSON_AddItemToObject(root, "added_tokens", added);
            added = NULL;
            cJSON_AddItemToObject(root, "normalizer", dup_or_null(tok->normalizer_json));
            cJSON_AddItemToObject(root, "pre_tokenizer", dup_or_null(tok->pre_tokenizer_json));
            cJSON_AddItemToObject(root, "post_processor", dup_or_null(tok->post_processor_json));
            cJSON_AddItemToObject(root, "decoder", dup_or_null(tok->decoder_json));
            cJSON_AddItemToObject(root, "model", model);
            model = NULL;
        }
    }
    free(order);
    cJSON_Delete(added);
    cJSON_Delete(vocab);
    cJSON_Delete(merges);
    cJSON_Delete(model);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

pt_status tokenizer_to_json(char **out, const tokenizer *tok, pt_error *err) {
    cJSON *root = build_json(tok);
    PT_CHECK(root, err, PT_ERR_NOMEM, "out of memory building tokenizer.json for %s", tok->name);
    *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    PT_CHECK(*out, err, PT_ERR_NOMEM, "out of memory printing tokenizer.json for %s", tok->name);
    return PT_OK;
}

static bool set_key(cJSON *obj, const char *key, cJSON *v) {
    if (!v) return false;
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    return cJSON_AddItemToObject(obj, key, v);
}

static cJSON *string_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

pt_status tokenizer_save(const tokenizer *tok, const char *dir, pt_error *err) {
    char path[4096];
    int w = snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    PT_CHECK(w > 0 && (size_t)w < sizeof path, err, PT_ERR_INVALID, "path too long: '%s'", dir);
    char *text;
    PT_TRY(tokenizer_to_json(&text, tok, err));
    pt_status st = tok_write_file_atomic(path, text, strlen(text), err);
    free(text);
    PT_TRY(st);

    /* tokenizer_config.json: the file we read (unknown keys kept) with our fields set */
    cJSON *cfg = tok->config_json ? cJSON_Duplicate(tok->config_json, 1) : cJSON_CreateObject();
    PT_CHECK(cfg, err, PT_ERR_NOMEM, "out of memory building tokenizer_config.json");
    bool ok = set_key(cfg, "add_bos_token", cJSON_CreateBool(tok->add_bos_token)) &&
              set_key(cfg, "add_eos_token", cJSON_CreateBool(tok->add_eos_token)) &&
              set_key(cfg, "bos_token", string_or_null(tok->bos_token)) &&
              set_key(cfg, "eos_token", string_or_null(tok->eos_token)) &&
              set_key(cfg, "pad_token", string_or_null(tok->pad_token ? tok->pad_token : tok->eos_token));
    if (ok && !field(cfg, "unk_token")) ok = cJSON_AddNullToObject(cfg, "unk_token") != NULL;
    if (ok && !field(cfg, "clean_up_tokenization_spaces"))
        ok = cJSON_AddBoolToObject(cfg, "clean_up_tokenization_spaces", false) != NULL;
    if (ok && !field(cfg, "tokenizer_class"))
        ok = cJSON_AddStringToObject(cfg, "tokenizer_class", "PreTrainedTokenizerFast") != NULL;
    if (ok && tok->chat_template) ok = set_key(cfg, "chat_template", cJSON_CreateString(tok->chat_template));
    char *ctext = ok ? cJSON_Print(cfg) : NULL;
    cJSON_Delete(cfg);
    PT_CHECK(ctext, err, PT_ERR_NOMEM, "out of memory printing tokenizer_config.json");
    w = snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    st = tok_write_file_atomic(path, ctext, strlen(ctext), err);
    free(ctext);
    return st;
}

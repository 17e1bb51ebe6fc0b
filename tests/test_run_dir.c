/* test_run_dir.c — the --out folder of a training run (sft/run_dir.h), on real folders under
 * /tmp: what is refused before anything is written (a file, a missing parent, a folder that
 * holds a run without --resume), what --resume auto finds, and that a start undone after the
 * store was opened leaves the folder exactly as it was (removed when the run made it; only
 * run.db removed when the folder was there). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sft/run_dir.h"
#include "tests/util/test_world.h"

static bool exists(const char *dir, const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static const config_key KEYS[] = {{"steps", CONFIG_INT, "3", ""}};

Test(run_dir, refuses_files_missing_parents_and_existing_runs) {
    char root[256], p[512];
    test_tmpdir(root, sizeof root, "rundir");
    run_dir d;
    pt_error err = {0};
    snprintf(p, sizeof p, "%s/file", root);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fclose(f);
    cr_assert_neq(run_dir_check(&d, p, &err), PT_OK);
    cr_assert(strstr(err.msg, "not a folder") && strstr(err.msg, p), "%s", err.msg);
    snprintf(p, sizeof p, "%s/no/such", root);
    cr_assert_neq(run_dir_check(&d, p, &err), PT_OK);
    cr_assert(strstr(err.msg, "parent folder") && strstr(err.msg, "/no"), "%s", err.msg);

    /* a folder with checkpoints/ holds a run: refused without --resume, continued with auto */
    snprintf(p, sizeof p, "%s/run", root);
    cr_assert_eq(mkdir(p, 0755), 0);
    cr_assert_eq(run_dir_check(&d, p, &err), PT_OK, "%s", err.msg);
    cr_assert(d.existed && !d.holds_run);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/checkpoints", p);
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(run_dir_check(&d, p, &err), PT_OK, "%s", err.msg);
    cr_assert(d.existed && d.holds_run);
    char ckpt[4096] = "x";
    cr_assert_neq(run_dir_resolve_resume(ckpt, sizeof ckpt, &d, NULL, NULL, &err), PT_OK);
    cr_assert(strstr(err.msg, "already holds a run") && strstr(err.msg, "--resume auto"), "%s", err.msg);
    cr_assert_eq(run_dir_resolve_resume(ckpt, sizeof ckpt, &d, "auto", NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_str_eq(ckpt, "", "no complete checkpoint: step 0");
    cr_assert_neq(run_dir_resolve_resume(ckpt, sizeof ckpt, &d, sub, NULL, &err), PT_OK);
    cr_assert(strstr(err.msg, "is not a complete checkpoint"), "%s", err.msg);
    test_rmtree(root);
}

Test(run_dir, undo_leaves_the_folder_as_it_was) {
    char root[256], fresh[512], old[512];
    test_tmpdir(root, sizeof root, "rundir");
    config cfg;
    config_schema s = CONFIG_SCHEMA(KEYS);
    pt_error err = {0};
    cr_assert_eq(config_init(&cfg, &s, 1, &err), PT_OK, "%s", err.msg);

    /* a folder the run creates: opened with run.db, then removed whole */
    snprintf(fresh, sizeof fresh, "%s/fresh", root);
    run_dir d;
    cr_assert_eq(run_dir_check(&d, fresh, &err), PT_OK, "%s", err.msg);
    char ckpt[4096];
    cr_assert_eq(run_dir_resolve_resume(ckpt, sizeof ckpt, &d, "auto", NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_str_eq(ckpt, "");
    run_store *rs = NULL;
    cr_assert_eq(run_dir_open_store(&rs, &d, "sft", &cfg, 0, &err), PT_OK, "%s", err.msg);
    cr_assert(rs && d.created_dir && d.created_db && exists(fresh, "run.db"));
    run_store_close(rs);
    run_dir_undo(&d);
    cr_assert_neq(access(fresh, F_OK), 0, "the folder the run made is gone");

    /* a folder that was there with a file of the user's: only run.db goes */
    snprintf(old, sizeof old, "%s/old", root);
    cr_assert_eq(mkdir(old, 0755), 0);
    char keep[600];
    snprintf(keep, sizeof keep, "%s/notes.txt", old);
    FILE *f = fopen(keep, "w");
    cr_assert(f);
    fputs("mine", f);
    fclose(f);
    cr_assert_eq(run_dir_check(&d, old, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(run_dir_open_store(&rs, &d, "grpo", &cfg, 0, &err), PT_OK, "%s", err.msg);
    cr_assert(!d.created_dir && d.created_db);
    run_store_close(rs);
    run_dir_undo(&d);
    cr_assert(!exists(old, "run.db") && exists(old, "notes.txt"));

    /* a run.db that was there is never removed */
    cr_assert_eq(run_dir_open_store(&rs, &d, "grpo", &cfg, 0, &err), PT_OK, "%s", err.msg);
    run_store_close(rs);
    cr_assert_eq(run_dir_check(&d, old, &err), PT_OK, "%s", err.msg);
    cr_assert(d.holds_run);
    cr_assert_eq(run_dir_open_store(&rs, &d, "grpo", &cfg, 0, &err), PT_OK, "%s", err.msg);
    cr_assert(!d.created_db);
    run_store_close(rs);
    run_dir_undo(&d);
    cr_assert(exists(old, "run.db"));
    config_free(&cfg);
    test_rmtree(root);
}

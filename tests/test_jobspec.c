/* test_jobspec.c - job files (common/jobspec.c), the emotion lexicon, render specs and kv
 * records: every validation error class with its exact position (tests/data/bad/), the
 * example jobs, defaults, seeds, canonical JSON and the 10,000-render parse time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/emotion.h"
#include "common/jobspec.h"
#include "common/kv.h"
#include "common/renderspec.h"
#include "common/util.h"
#include "tests/testlib.h"

static void s_parse_bad(const char *yaml, const char *expected)
{
    char err[4096];
    mg_job_t *job = (mg_job_t *)1;
    int rc = mg_job_parse_buffer("t.yaml", yaml, strlen(yaml), &job, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_null(job);
    assert_string_equal(err, expected);
}

/* ---- error classes, one file each --------------------------------------------------------- */

static const struct {
    const char *file;
    const char *where_what; /* "line:col: message" */
} s_bad[] = {
    {"unknown-key", "6:5: unknown key 'tempoo' (did you mean 'tempo'?)"},
    {"misplaced-key", "3:1: unknown key 'duration' at the top level ('duration' is a cue field: put it "
                      "in a cue under 'cues', or under 'defaults')"},
    {"defaults-name", "4:3: 'name' cannot have a default: every cue names itself"},
    {"wrong-type", "6:15: 'duration' must be a number, got 'abc'"},
    {"quoted-number", "4:16: 'sample_rate' must be an integer, got the string '48000' (remove the quotes)"},
    {"out-of-range", "6:15: 'duration' must be > 0 and <= 600 seconds, got 700"},
    {"variations-range", "6:17: 'variations' must be between 1 and 1000, got 0"},
    {"flac-depth", "4:19: 'flac_bit_depth' must be 16 or 24, got 20"},
    {"empty-prompt", "5:13: 'prompt' is empty; describe the music to render"},
    {"prompt-too-long", "5:13: 'prompt' is 2001 bytes long; at most 2000 allowed"},
    {"unknown-emotion", "6:16: unknown emotion 'joyfull' (did you mean 'joyful'?)"},
    {"too-many-emotions", "6:15: 'emotions' has 9 tags; at most 8 allowed"},
    {"unknown-format", "4:19: unknown format 'ogg' (expected flac, mp3 or wav)"},
    {"duplicate-cue", "8:11: duplicate cue name 'jingle' (first defined at line 4)"},
    {"bad-cue-name", "4:11: cue name 'jingle/30s' may only use letters, digits, space, '_', '.' and '-'"},
    {"missing-campaign", "2:1: missing required key 'campaign' (the campaign's name)"},
    {"missing-prompt", "6:5: missing required key 'prompt' in cue 'sting'"},
    {"missing-cues", "2:1: missing required key 'cues' (a list of cues, each with 'name' and 'prompt')"},
    {"empty-cues", "3:7: 'cues' must not be empty"},
    {"seeds-and-variations", "7:5: 'seeds' and 'variations' cannot both be given; use 'seeds' for exact "
                             "seeds or 'variations' for a count of derived ones"},
    {"bad-seed", "6:16: a seed must be an integer from 0 to 18446744073709551615, got '-2'"},
    {"duplicate-seed", "6:19: seed 7 is listed twice (first at line 6, column 13)"},
    {"bad-key", "6:10: 'key' must be a note A-G with an optional # or b, then 'major' or 'minor' "
                "(e.g. \"D minor\", \"F# major\"), got 'H minor'"},
    {"instrument-comma", "6:19: 'instruments' entry 'guitar, claps' contains a comma; give each one as "
                         "its own list entry"},
    {"syntax-error", "7:13: YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
                     "sequence started at line 6, column 15)"},
    {"duplicate-key", "7:5: duplicate key 'duration' (first at line 6)"},
    {"alias", "5:13: anchor '&p': anchors and aliases are not supported in job files; use 'defaults:' "
              "for shared cue settings\n"
              "@7:13: alias '*p': anchors and aliases are not supported in job files; use 'defaults:' "
              "for shared cue settings"},
    {"yaml-tag", "6:15: YAML tag '!!float' is not supported in job files; remove it"},
    {"control-char", "2:11: 'campaign' contains a control character (U+0007); names are one line of text"},
    {"bad-utf8", "5:17: invalid UTF-8 (byte 0xe9); job files must be UTF-8 text"},
    {"not-mapping", "2:1: a job file must be a mapping with 'campaign' and 'cues' at the top level, got a list"},
    {"empty", "1:1: empty job file; it needs at least 'campaign' and 'cues'"},
    {"multi-doc", "6:1: a job file holds one YAML document; this is a second one (remove the '---' or "
                  "split the file)"},
    {"many-errors", "3:11: 'priority' must be between -100 and 100, got 500\n"
                    "@5:19: unknown format 'ogg' (expected flac, mp3 or wav)\n"
                    "@9:5: unknown key 'tempoo' (did you mean 'tempo'?)\n"
                    "@10:16: unknown emotion 'joyfull' (did you mean 'joyful'?)\n"
                    "@11:5: missing required key 'prompt' in cue 'sting'\n"
                    "@12:15: 'duration' must be > 0 and <= 600 seconds, got -1\n"
                    "@13:11: duplicate cue name 'jingle' (first defined at line 7)"},
};

/* Expands '@' at a line start into "<path>:" so the table stays readable. */
static void s_expect(const char *path, const char *spec, char *out, size_t outlen)
{
    size_t o = (size_t)snprintf(out, outlen, "%s:", path);
    for (const char *p = spec; *p && o + 1 < outlen; p++) {
        if (*p == '@' && p > spec && p[-1] == '\n') o += (size_t)snprintf(out + o, outlen - o, "%s:", path);
        else out[o++] = *p;
    }
    out[o] = 0;
}

static void test_bad_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        char rel[128], expected[4096], err[4096];
        snprintf(rel, sizeof rel, "tests/data/bad/%s.yaml", s_bad[i].file);
        const char *path = mg_test_path(rel);
        s_expect(path, s_bad[i].where_what, expected, sizeof expected);
        mg_job_t *job = (mg_job_t *)1;
        int rc = mg_job_parse_file(path, &job, err, sizeof err);
        if (rc != -1 || strcmp(err, expected) != 0)
            fprintf(stderr, "%s:\n  got:      %s\n  expected: %s\n", rel, err, expected);
        assert_int_equal(rc, -1);
        assert_null(job);
        assert_string_equal(err, expected);
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    char err[512];
    mg_job_t *job = NULL;
    assert_int_equal(mg_job_parse_file("/nonexistent/x.yaml", &job, err, sizeof err), -1);
    assert_null(job);
    assert_non_null(strstr(err, "/nonexistent/x.yaml: cannot read the job file"));
}

static void test_more_errors(void **state)
{
    (void)state;
    /* A second '---' document, wrong container types, null values, key forms. */
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    emotions: joyful\n",
                "t.yaml:5:15: 'emotions' must be a list, e.g. [joyful, energetic], got 'joyful'");
    s_parse_bad("campaign: c\ncues:\n  - just a string\n",
                "t.yaml:3:5: each cue must be a mapping with at least 'name' and 'prompt', got 'just a string'");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    duration:\n",
                "t.yaml:5:14: 'duration' must be a number, got nothing");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    variations: 2.5\n",
                "t.yaml:5:17: 'variations' must be an integer, got '2.5'");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    tempo: 10\n",
                "t.yaml:5:12: 'tempo' must be >= 20 and <= 300 bpm, got 10");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    duration: .nan\n",
                "t.yaml:5:15: 'duration' must be a number, got '.nan'");
    s_parse_bad("campaign: c\noutput:\n  channels: 3\n  loudness_lufs: 3\ncues:\n  - name: a\n    prompt: p\n",
                "t.yaml:3:13: 'channels' must be between 1 and 2, got 3\n"
                "t.yaml:4:18: 'loudness_lufs' must be >= -70 and <= 0 LUFS, got 3");
    s_parse_bad("campaign: c\noutput:\n  formats: []\ncues:\n  - name: a\n    prompt: p\n",
                "t.yaml:3:12: 'formats' must not be empty; use e.g. [flac]");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    emotions: [sadness, Sad]\n",
                "t.yaml:5:25: 'Sad' and 'sadness' (line 5, column 16) are the same emotion 'sad'; list it once");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    emotions: [xqzvwk]\n",
                "t.yaml:5:16: unknown emotion 'xqzvwk' (the tags are listed in docs/jobs.md)");
    s_parse_bad("campaign: c\ncues:\n  - name: Jingle 30\n    prompt: p\n  - name: jingle-30\n    prompt: p\n",
                "t.yaml:5:11: cue name 'jingle-30' clashes with 'Jingle 30' (line 3): both give file names 'jingle-30'");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    sample_rate: 44100\n",
                "t.yaml:5:5: unknown key 'sample_rate' in a cue ('sample_rate' belongs under 'output')");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    zzzzzz: 1\n",
                "t.yaml:5:5: unknown key 'zzzzzz' in a cue (expected one of: name, prompt, emotions, duration, "
                "variations, seeds, tempo, key, instruments, stems, loop)");
    s_parse_bad("campaign: \"\"\ncues:\n  - name: a\n    prompt: p\n", "t.yaml:1:11: 'campaign' is empty");
    s_parse_bad("campaign: c\ncues:\n  - prompt: p\n", "t.yaml:3:5: missing required key 'name' in cue 1");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: \"p\\0q\"\n",
                "t.yaml:4:13: 'prompt' contains a control character (U+0000)");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: \"p\\u0085q\"\n",
                "t.yaml:4:13: 'prompt' contains a control character (U+0085)");
    s_parse_bad("campaign: c\nclient: \"a\\nb\"\ncues:\n  - name: a\n    prompt: p\n",
                "t.yaml:2:9: 'client' contains a control character (U+000A); names are one line of text");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    seeds: [18446744073709551616]\n",
                "t.yaml:5:13: a seed must be an integer from 0 to 18446744073709551615, got '18446744073709551616'");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    seeds: []\n",
                "t.yaml:5:12: 'seeds' must not be empty; leave it out to derive seeds from 'variations'");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    emotions: []\n",
                "t.yaml:5:15: 'emotions' must not be empty; leave it out for no emotion tags");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    \"tempo\\0\": 1\n",
                "t.yaml:5:5: unknown key 'tempo?' in a cue (it contains a NUL character)");
    s_parse_bad("campaign: c\n? [a]\n: 1\ncues:\n  - name: a\n    prompt: p\n",
                "t.yaml:2:3: keys in the job file must be words, got a list");
    /* A syntax error is reported with libyaml's problem mark and nothing else. */
    s_parse_bad("campaign: c\n\tcues: 1\n",
                "t.yaml:2:1: YAML syntax error: found a tab character that violates indentation "
                "(while scanning a plain scalar started at line 1, column 11)");

    /* Too many renders in one job. */
    char *big = malloc(200000);
    size_t o = (size_t)sprintf(big, "campaign: big\ndefaults:\n  variations: 1000\ncues:\n");
    for (int i = 0; i < 101; i++) o += (size_t)sprintf(big + o, "  - {name: c%d, prompt: p}\n", i);
    s_parse_bad(big, "t.yaml:5:3: the job has 101000 renders; at most 100000 per job (split the file)");
    free(big);
}

/* Empty mappings where mappings go (found by fuzz_jobspec: the key check sorted a NULL array). */
static void test_empty_mappings(void **state)
{
    (void)state;
    mg_job_t *job = mg_test_job_parse("campaign: c\noutput: {}\ndefaults: {}\ncues:\n  - {name: a, prompt: p}\n");
    assert_int_equal(job->output.formats, MG_FORMAT_FLAC);
    mg_job_destroy(&job);
    s_parse_bad("campaign: c\ncues: [{}]\n", "t.yaml:2:8: missing required key 'name' in cue 1\n"
                                            "t.yaml:2:8: missing required key 'prompt' in cue '?'");
    s_parse_bad("{}", "t.yaml:1:1: missing required key 'campaign' (the campaign's name)\n"
                      "t.yaml:1:1: missing required key 'cues' (a list of cues, each with 'name' and 'prompt')");
}

static void test_error_buffer_truncation(void **state)
{
    (void)state;
    const char *yaml = "campaign: c\npriority: 500\ncues:\n  - name: a\n    prompt: p\n    duration: 0\n";
    char err[40];
    memset(err, 'x', sizeof err);
    mg_job_t *job = NULL;
    assert_int_equal(mg_job_parse_buffer("t.yaml", yaml, strlen(yaml), &job, err, sizeof err), -1);
    assert_null(job);
    assert_true(memchr(err, 0, sizeof err) != NULL);
    assert_int_equal(strncmp(err, "t.yaml:2:11: 'priority'", 23), 0);
    char big[300];
    assert_int_equal(mg_job_parse_buffer("t.yaml", yaml, strlen(yaml), &job, big, 100), -1);
    assert_string_equal(big, "t.yaml:2:11: 'priority' must be between -100 and 100, got 500\n"
                             "t.yaml: 1 more errors not shown");
    /* err may be NULL: the caller only wants the verdict. */
    assert_int_equal(mg_job_parse_buffer("t.yaml", yaml, strlen(yaml), &job, NULL, 0), -1);
}

/* ---- the example jobs ------------------------------------------------------------------------- */

static void test_example_jobs(void **state)
{
    (void)state;
    char err[4096];
    mg_job_t *job = NULL;

    int rc = mg_job_parse_file(mg_test_path("jobs/ad-campaign.yaml"), &job, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(job->campaign, "summer-sale-2026");
    assert_string_equal(job->client, "Sunny Drinks Ltd");
    assert_string_equal(job->owner, "ana@agency.example");
    assert_int_equal(job->priority, 10);
    assert_int_equal(job->output.formats, MG_FORMAT_FLAC | MG_FORMAT_MP3);
    assert_int_equal(job->output.normalize, 1);
    assert_true(job->output.loudness_lufs == -14.0);
    assert_int_equal(job->n_cues, 4);
    assert_int_equal(mg_job_render_count(job), 12);
    assert_int_equal(job->output.deliver, MG_DELIVER_MIX | MG_DELIVER_STEMS | MG_DELIVER_MIDI);
    assert_int_equal(job->cues[3].loop, 1);
    assert_int_equal(job->cues[0].loop, 0);
    double audio = 0;
    for (int i = 0; i < job->n_cues; i++) audio += job->cues[i].duration_s * job->cues[i].variations;
    assert_true(audio <= 240.0); /* make demo renders it on a 2-core CPU */
    const mg_cue_t *jingle = &job->cues[0];
    assert_string_equal(jingle->name, "jingle-30s");
    /* The cue's position is its mapping's first key: "  - name: jingle-30s". */
    char *text = mg_read_file(mg_test_path("jobs/ad-campaign.yaml"), NULL);
    assert_non_null(text);
    char *at = strstr(text, "\n  - name: jingle-30s\n");
    assert_non_null(at);
    int line = 2;
    for (char *p = text; p < at; p++) line += *p == '\n';
    free(text);
    assert_int_equal(jingle->line, line);
    assert_int_equal(jingle->col, 5);
    assert_int_equal(jingle->n_emotions, 2);
    assert_string_equal(jingle->emotions[0], "joyful");
    assert_string_equal(jingle->emotions[1], "energetic");
    assert_true(jingle->duration_s == 30.0);
    assert_int_equal(jingle->variations, 4);
    /* from defaults */
    assert_true(jingle->tempo_bpm == 120.0);
    assert_string_equal(jingle->key, "D major");
    assert_int_equal(jingle->n_instruments, 4);
    assert_string_equal(jingle->instruments[0], "acoustic guitar");
    const mg_cue_t *sting = &job->cues[2];
    assert_int_equal(sting->variations, 3);
    assert_true(sting->seeds[0] == 101 && sting->seeds[1] == 202 && sting->seeds[2] == 303);
    assert_int_equal(sting->n_stems, 2); /* overrides the defaults' four */
    assert_string_equal(sting->stems[1], "chords");
    assert_string_equal(job->source_name, mg_test_path("jobs/ad-campaign.yaml"));
    mg_job_destroy(&job);
    assert_null(job);

    assert_int_equal(mg_job_parse_file(mg_test_path("jobs/catalog-nightly.yaml"), &job, err, sizeof err), 0);
    assert_int_equal(job->n_cues, 10);
    assert_int_equal(mg_job_render_count(job), 30);
    assert_int_equal(job->output.formats, MG_FORMAT_FLAC);
    assert_int_equal(job->output.flac_bits, 24);
    assert_int_equal(job->output.normalize, 1); /* on by default: -14 LUFS */
    assert_true(job->output.loudness_lufs == -14.0);
    assert_int_equal(job->priority, -10);
    assert_string_equal(job->cues[7].key, "Eb major");
    mg_job_destroy(&job);

    assert_int_equal(mg_job_parse_file(mg_test_path("jobs/minimal.yaml"), &job, err, sizeof err), 0);
    assert_int_equal(mg_job_render_count(job), 1);
    assert_string_equal(job->client, "");
    assert_string_equal(job->owner, "");
    assert_int_equal(job->priority, 0);
    assert_int_equal(job->output.formats, MG_FORMAT_FLAC);
    assert_int_equal(job->output.sample_rate, 48000);
    assert_int_equal(job->output.channels, 2);
    assert_int_equal(job->output.mp3_bitrate_kbps, 192);
    assert_int_equal(job->output.flac_bits, 16);
    assert_int_equal(job->output.normalize, 1); /* on unless loudness_lufs: ~ */
    const mg_cue_t *q = &job->cues[0];
    assert_true(q->duration_s == 30.0);
    assert_int_equal(q->variations, 1);
    assert_int_equal(q->n_emotions, 0);
    assert_null(q->emotions);
    assert_null(q->key);
    assert_true(q->tempo_bpm == 0);
    assert_int_equal(q->n_instruments, 0);
    assert_int_equal(q->n_stems, 0);
    /* The canonical form, written out by hand from docs/jobs.md; its sha256 computed with
     * Python's hashlib. */
    assert_string_equal(job->canonical_json,
        "{\"schema\":\"mg-job-v1\",\"campaign\":\"minimal\",\"client\":\"\",\"owner\":\"\",\"priority\":0,"
        "\"output\":{\"formats\":[\"flac\"],\"sample_rate\":48000,\"channels\":2,\"mp3_bitrate\":192,"
        "\"flac_bit_depth\":16,\"normalize\":true,\"loudness_lufs\":-14},\"cues\":[{\"name\":\"demo\","
        "\"prompt\":\"calm piano\",\"emotions\":[],\"duration\":30,\"variations\":1,"
        "\"seeds\":[\"4783718657676309627\"],\"tempo\":null,\"key\":null,\"instruments\":[],\"stems\":[]}]}");
    assert_string_equal(job->canonical_sha256, "72b55e75d5f78395b05f0e3c949bd4cfcf2003f663b055c8d08b238334af3c5e");
    assert_string_equal(job->idempotency_key, job->canonical_sha256);
    mg_job_destroy(&job);
    mg_job_destroy(&job); /* NULL-safe */
    mg_job_destroy(NULL);
}

static void test_defaults(void **state)
{
    (void)state;
    mg_job_t *job = mg_test_job_parse(
        "campaign: d\n"
        "defaults:\n"
        "  duration: 12.5\n"
        "  variations: 2\n"
        "  emotions: [Calm, sadness]\n"
        "  key: \"f# MINOR\"\n"
        "  tempo: 90\n"
        "  instruments: [piano]\n"
        "cues:\n"
        "  - name: a\n"
        "    prompt: first\n"
        "  - name: b\n"
        "    prompt: second\n"
        "    duration: 5\n"
        "    seeds: [9]\n"
        "    key: ~\n"
        "    tempo: null\n"
        "    instruments: []\n"
        "    emotions: [angry]\n");
    const mg_cue_t *a = &job->cues[0], *b = &job->cues[1];
    assert_true(a->duration_s == 12.5);
    assert_int_equal(a->variations, 2);
    assert_int_equal(a->n_emotions, 2);
    assert_string_equal(a->emotions[0], "calm");
    assert_string_equal(a->emotions[1], "sad"); /* synonyms are stored as the canonical tag */
    assert_string_equal(a->key, "F# minor");
    assert_true(a->tempo_bpm == 90.0);
    assert_int_equal(a->n_instruments, 1);
    assert_true(b->duration_s == 5.0);
    assert_int_equal(b->variations, 1);
    assert_true(b->seeds[0] == 9);
    assert_null(b->key);          /* "~" means: the composer decides, even over a default */
    assert_true(b->tempo_bpm == 0);
    assert_int_equal(b->n_instruments, 0);
    assert_int_equal(b->n_emotions, 1);
    assert_string_equal(b->emotions[0], "angry");
    assert_int_equal(mg_job_render_count(job), 3);
    mg_job_destroy(&job);

    /* A prompt given only in defaults is used by every cue. */
    job = mg_test_job_parse("campaign: d\ndefaults: {prompt: shared}\ncues: [{name: a}, {name: b, prompt: own}]\n");
    assert_string_equal(job->cues[0].prompt, "shared");
    assert_string_equal(job->cues[1].prompt, "own");
    mg_job_destroy(&job);
}

static void test_strings(void **state)
{
    (void)state;
    mg_job_t *job = mg_test_job_parse(
        "campaign: Café Été 2026\n"
        "client: 2026\n"
        "cues:\n"
        "  - name: a.b_c-d 1\n"
        "    prompt: |\n"
        "\n"
        "      line \"one\" \\ back\n"
        "      \tline two ♪\n"
        "\n");
    assert_string_equal(job->campaign, "Café Été 2026");
    assert_string_equal(job->client, "2026");
    assert_string_equal(job->cues[0].name, "a.b_c-d 1");
    /* Surrounding whitespace trimmed, inner newlines and tabs kept. */
    assert_string_equal(job->cues[0].prompt, "line \"one\" \\ back\n\tline two ♪");
    assert_non_null(strstr(job->canonical_json, "\"prompt\":\"line \\\"one\\\" \\\\ back\\n\\tline two ♪\""));
    mg_job_destroy(&job);

    /* Exactly the limits are accepted. */
    char *y = malloc(4000);
    char name[MG_NAME_MAX + 1];
    memset(name, 'n', MG_NAME_MAX);
    name[MG_NAME_MAX] = 0;
    char *prompt = malloc(MG_PROMPT_MAX + 1);
    memset(prompt, 'p', MG_PROMPT_MAX);
    prompt[MG_PROMPT_MAX] = 0;
    snprintf(y, 4000, "campaign: %s\ncues:\n  - name: %s\n    prompt: %s\n", name, name, prompt);
    job = mg_test_job_parse(y);
    assert_int_equal(strlen(job->cues[0].prompt), MG_PROMPT_MAX);
    mg_job_destroy(&job);
    snprintf(y, 4000, "campaign: %sx\ncues:\n  - name: %s\n    prompt: p\n", name, name);
    s_parse_bad(y, "t.yaml:1:11: 'campaign' is 101 bytes long; at most 100 allowed");
    free(prompt);
    free(y);
}

/* ---- seeds -------------------------------------------------------------------------------------- */

static void test_seed_derive(void **state)
{
    (void)state;
    /* Reference values from the documented formula, computed with Python's hashlib:
     * int.from_bytes(sha256(b"mg-seed-v1\0" + campaign + b"\0" + cue + b"\0" + str(v))[:8], "big") */
    assert_true(mg_seed_derive("summer-sale-2026", "jingle-30s", 0) == 2401574254497089982ULL);
    assert_true(mg_seed_derive("summer-sale-2026", "jingle-30s", 1) == 5106784267679514037ULL);
    assert_true(mg_seed_derive("minimal", "demo", 0) == 4783718657676309627ULL);
    assert_true(mg_seed_derive("x", "y", 999) == 8198234075014045209ULL);
    /* The separators matter: ("ab", "c") and ("a", "bc") differ. */
    assert_true(mg_seed_derive("ab", "c", 0) != mg_seed_derive("a", "bc", 0));

    char err[1024];
    mg_job_t *j1 = NULL, *j2 = NULL;
    assert_int_equal(mg_job_parse_file(mg_test_path("jobs/ad-campaign.yaml"), &j1, err, sizeof err), 0);
    assert_int_equal(mg_job_parse_file(mg_test_path("jobs/ad-campaign.yaml"), &j2, err, sizeof err), 0);
    uint64_t all[16];
    int n = 0;
    for (int c = 0; c < j1->n_cues; c++)
        for (int v = 0; v < j1->cues[c].variations; v++) {
            assert_true(j1->cues[c].seeds[v] == j2->cues[c].seeds[v]); /* deterministic */
            all[n++] = j1->cues[c].seeds[v];
        }
    assert_int_equal(n, 12);
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) assert_true(all[a] != all[b]); /* distinct across cues and takes */
    assert_true(j1->cues[0].seeds[0] == 2401574254497089982ULL);
    assert_true(j1->cues[1].seeds[2] == mg_seed_derive("summer-sale-2026", "cutdown-15s", 2));
    mg_job_destroy(&j1);
    mg_job_destroy(&j2);

    mg_job_t *job = mg_test_job_parse("campaign: s\ncues:\n  - name: a\n    prompt: p\n"
                               "    seeds: [0, 18446744073709551615, 42]\n");
    assert_int_equal(job->cues[0].variations, 3);
    assert_true(job->cues[0].seeds[0] == 0);
    assert_true(job->cues[0].seeds[1] == UINT64_MAX);
    assert_true(job->cues[0].seeds[2] == 42);
    assert_non_null(strstr(job->canonical_json, "\"seeds\":[\"0\",\"18446744073709551615\",\"42\"]"));
    mg_job_destroy(&job);
}

/* ---- canonical JSON and idempotency ------------------------------------------------------- */

static char *s_canon(const char *yaml, char sha[65], char key[256])
{
    mg_job_t *job = mg_test_job_parse(yaml);
    char *json = strdup(job->canonical_json);
    memcpy(sha, job->canonical_sha256, 65);
    if (key) snprintf(key, 256, "%s", job->idempotency_key);
    char check[65];
    mg_sha256_hex(job->canonical_json, strlen(job->canonical_json), check);
    assert_string_equal(check, job->canonical_sha256);
    mg_job_destroy(&job);
    return json;
}

static void test_canonical(void **state)
{
    (void)state;
    const char *base =
        "campaign: c\n"
        "priority: 3\n"
        "output:\n"
        "  formats: [mp3, flac]\n"
        "  loudness_lufs: -16\n"
        "cues:\n"
        "  - name: a\n"
        "    prompt: \"soft rain\"\n"
        "    duration: 20\n"
        "    emotions: [calm]\n"
        "  - name: b\n"
        "    prompt: storm\n"
        "    variations: 2\n";
    /* Same content: comments, key order, flow style, quoting, spacing, a default that
     * says what the built-in default says, a synonym, a format's case. */
    const char *same =
        "# a comment\n"
        "cues:   # the cues\n"
        "  - {duration: 20.0, prompt: 'soft rain', name: a, emotions: [CALM]}\n"
        "  -   name: \"b\"\n"
        "      variations: 2\n"
        "      prompt: >-\n"
        "        storm\n"
        "output: {loudness_lufs: -16.0, formats: [FLAC, mp3], sample_rate: 48000}\n"
        "priority: +3\n"
        "campaign: \"c\"\n";
    char s1[65], s2[65], k1[256], k2[256];
    char *j1 = s_canon(base, s1, k1);
    char *j2 = s_canon(same, s2, k2);
    assert_string_equal(j1, j2);
    assert_string_equal(s1, s2);
    assert_string_equal(k1, s1); /* default idempotency key = canonical sha256 */
    assert_string_equal(k2, k1);
    free(j2);

    /* Content changes change it. */
    static const struct { const char *from, *to; } edits[] = {
        {"soft rain", "soft rains"}, {"duration: 20", "duration: 21"}, {"variations: 2", "variations: 3"},
        {"[mp3, flac]", "[flac]"},   {"priority: 3", "priority: 4"},   {"[calm]", "[peaceful]"},
        {"-16", "-15"},              {"name: b", "name: b2"},          {"campaign: c", "campaign: d"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char y[1024];
        const char *at = strstr(base, edits[i].from);
        assert_non_null(at);
        snprintf(y, sizeof y, "%.*s%s%s", (int)(at - base), base, edits[i].to, at + strlen(edits[i].from));
        char s3[65];
        char *j3 = s_canon(y, s3, NULL);
        assert_string_not_equal(j3, j1);
        assert_string_not_equal(s3, s1);
        free(j3);
    }

    /* An explicit idempotency key is kept and is not part of the canonical form. */
    char y[1024], s4[65], k4[256];
    snprintf(y, sizeof y, "idempotency_key: summer-v1\n%s", base);
    char *j4 = s_canon(y, s4, k4);
    assert_string_equal(k4, "summer-v1");
    assert_string_equal(j4, j1);
    assert_string_equal(s4, s1);
    free(j4);
    free(j1);

    /* Non-integral numbers print as the shortest text that reads back. */
    mg_job_t *job = mg_test_job_parse("campaign: c\ncues:\n  - {name: a, prompt: p, duration: 0.1, tempo: 98.25}\n");
    assert_non_null(strstr(job->canonical_json, "\"duration\":0.1,"));
    assert_non_null(strstr(job->canonical_json, "\"tempo\":98.25,"));
    mg_job_destroy(&job);
}

/* ---- performance --------------------------------------------------------------------------- */

/* "model name" of the first CPU, for the benchmark line. */
static const char *s_cpu(char *buf, size_t len)
{
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return buf;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        snprintf(buf, len, "%s", colon + 2);
        buf[strcspn(buf, "\n")] = 0;
        break;
    }
    fclose(f);
    return buf;
}

static void s_time_parse(const char *label, const char *buf, size_t expect_renders)
{
    char err[1024];
    mg_job_t *job = NULL;
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = mg_test_now_ms();
        int rc = mg_job_parse_buffer("big.yaml", buf, strlen(buf), &job, err, sizeof err);
        double dt = mg_test_now_ms() - t0;
        if (rc) fprintf(stderr, "%s\n", err);
        assert_int_equal(rc, 0);
        assert_int_equal(mg_job_render_count(job), expect_renders);
        mg_job_destroy(&job);
        if (dt < best) best = dt;
    }
    char cpu[128];
    printf("jobspec: parse %s (%zu bytes, %zu renders): %.1f ms, best of 5, one core of %s "
           "(target: well under 1000 ms)\n", label, strlen(buf), expect_renders, best,
           s_cpu(cpu, sizeof cpu));
    assert_true(best < 1000.0);
}

static void test_parse_10k_renders(void **state)
{
    (void)state;
    size_t cap = 4u << 20, o = 0;
    char *buf = malloc(cap);
    o += (size_t)snprintf(buf + o, cap - o,
                          "campaign: perf\noutput: {formats: [flac, mp3], loudness_lufs: -14}\n"
                          "defaults: {duration: 30, emotions: [joyful, energetic]}\ncues:\n");
    for (int i = 0; i < 250; i++)
        o += (size_t)snprintf(buf + o, cap - o,
                              "  - name: cue-%03d\n    prompt: \"cue %d of the performance test, piano "
                              "and strings\"\n    variations: 40\n    tempo: %d\n    key: D minor\n"
                              "    instruments: [piano, strings]\n", i, i, 60 + i % 100);
    s_time_parse("250 cues x 40 variations", buf, 10000);

    o = (size_t)snprintf(buf, cap, "campaign: perf\ncues:\n");
    for (int i = 0; i < 250; i++) {
        o += (size_t)snprintf(buf + o, cap - o, "  - name: cue-%03d\n    prompt: p\n    seeds: [", i);
        for (int v = 0; v < 40; v++)
            o += (size_t)snprintf(buf + o, cap - o, "%s%llu", v ? ", " : "",
                                  (unsigned long long)i * 1000003ULL + (unsigned long long)v * 7919ULL);
        o += (size_t)snprintf(buf + o, cap - o, "]\n");
    }
    s_time_parse("250 cues x 40 explicit seeds", buf, 10000);

    o = (size_t)snprintf(buf, cap, "campaign: perf\ncues:\n");
    for (int i = 0; i < 10000; i++)
        o += (size_t)snprintf(buf + o, cap - o, "  - {name: cue-%05d, prompt: p}\n", i);
    s_time_parse("10000 cues x 1 variation", buf, 10000);
    free(buf);
}

/* ---- limits: what a hostile file can cost ------------------------------------------------------ */

/* Parses buf (len bytes), expects a refusal whose first line is first_line, and returns the
 * time it took in ms. */
static double s_refused(const char *what, const char *buf, size_t len, const char *first_line)
{
    static char err[1 << 16];
    mg_job_t *job = (mg_job_t *)1;
    double t0 = mg_test_now_ms();
    int rc = mg_job_parse_buffer("t.yaml", buf, len, &job, err, sizeof err);
    double dt = mg_test_now_ms() - t0;
    size_t n = strcspn(err, "\n");
    if (rc != -1 || strncmp(err, first_line, n) != 0 || strlen(first_line) != n)
        fprintf(stderr, "%s:\n  got:      %.*s\n  expected: %s\n", what, (int)n, err, first_line);
    assert_int_equal(rc, -1);
    assert_null(job);
    assert_int_equal(strncmp(err, first_line, n), 0);
    assert_int_equal(strlen(first_line), n);
    printf("jobspec: %s (%zu bytes) refused in %.2f ms\n", what, len, dt);
    return dt;
}

/* 200 KB and 800 KB of "[[[...]]]" and "{a: {a: ...}}": libyaml's scanner costs O(depth) per
 * token, so before the depth limit these took 29 s and minutes. Refused at level 33. */
static void test_limit_nesting(void **state)
{
    (void)state;
    size_t cap = 800001;
    char *buf = malloc(cap + 8);
    for (int big = 0; big < 2; big++) {
        size_t n = big ? 400000 : 100000, o = 0;
        memset(buf, '[', n);
        memset(buf + n, ']', n);
        assert_true(s_refused(big ? "nested lists, 800 KB" : "nested lists, 200 KB", buf, 2 * n,
                              "t.yaml:1:33: lists and mappings are nested more than 32 deep here; a job "
                              "file needs about 6 levels (limit: 32)") < 100.0);
        size_t levels = n * 2 / 5;
        for (size_t i = 0; i < levels; i++) { memcpy(buf + o, "{a: ", 4); o += 4; }
        buf[o++] = '1';
        memset(buf + o, '}', levels);
        o += levels;
        assert_true(s_refused(big ? "nested mappings, 800 KB" : "nested mappings, 200 KB", buf, o,
                              "t.yaml:1:129: lists and mappings are nested more than 32 deep here; a job "
                              "file needs about 6 levels (limit: 32)") < 100.0);
    }
    /* Block style counts the same; 32 levels are still only a validation matter. */
    size_t o = (size_t)sprintf(buf, "campaign: c\ncues:\n  - name: a\n    prompt: p\n    instruments:\n");
    for (int d = 0; d < 28; d++) o += (size_t)sprintf(buf + o, "%*s-\n", 6 + 2 * d, "");
    o += (size_t)sprintf(buf + o, "%*s- x\n", 62, "");
    s_refused("32 levels", buf, o, "t.yaml:7:9: 'instruments' must be a string, got a list");
    o = (size_t)sprintf(buf, "campaign: c\ncues:\n  - name: a\n    prompt: p\n    instruments:\n");
    for (int d = 0; d < 29; d++) o += (size_t)sprintf(buf + o, "%*s-\n", 6 + 2 * d, "");
    o += (size_t)sprintf(buf + o, "%*s- x\n", 64, "");
    s_refused("33 levels", buf, o, "t.yaml:35:65: lists and mappings are nested more than 32 deep here; a "
                                   "job file needs about 6 levels (limit: 32)");
    free(buf);
}

/* Anchors and aliases are refused, never expanded: the "billion laughs" (each alias stands
 * for nine copies of the one before) costs what its bytes cost. */
static void test_limit_alias_bomb(void **state)
{
    (void)state;
    char *buf = malloc(1 << 20);
    /* under a cue field, so the anchor is the first problem in the file */
    size_t o = (size_t)sprintf(buf, "campaign: lol\ncues:\n  - name: a\n    prompt: p\n    instruments:\n"
                                    "      - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (int i = 1; i < 10; i++)
        o += (size_t)sprintf(buf + o, "      - &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i,
                             i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    o += (size_t)sprintf(buf + o, "  - name: b\n    prompt: p\n    instruments: *l9\n");
    assert_true(s_refused("billion laughs", buf, o,
                          "t.yaml:6:9: anchor '&l0': anchors and aliases are not supported in job files; "
                          "use 'defaults:' for shared cue settings") < 100.0);
    /* 1 MiB of aliases: one error each would be 100,000 lines; 1000 are kept, the rest counted. */
    o = (size_t)sprintf(buf, "campaign: &a c\ncues: [");
    while (o < (1 << 20) - 16) o += (size_t)sprintf(buf + o, "*a, ");
    o += (size_t)sprintf(buf + o, "*a]\n");
    static char err[1 << 20];
    mg_job_t *job = NULL;
    double t0 = mg_test_now_ms();
    assert_int_equal(mg_job_parse_buffer("t.yaml", buf, o, &job, err, sizeof err), -1);
    double dt = mg_test_now_ms() - t0;
    printf("jobspec: 1 MiB of aliases refused in %.1f ms\n", dt);
    assert_true(dt < 5000.0); /* linear: about 0.1 s, more under sanitizers on a loaded machine */
    const char *last = strrchr(err, '\n');
    assert_non_null(last);
    assert_non_null(strstr(last, "more errors not shown (only the first 1000 found are listed)"));
    free(buf);
}

/* The size limit is checked before libyaml sees a byte, for a buffer (the coordinator's
 * SUBMIT) and for a file (mgctl), which is not read whole. */
static void test_limit_size(void **state)
{
    (void)state;
    size_t max = (8u << 20) - (64u << 10);
    char *buf = malloc(max + 2);
    memset(buf, '[', max + 1);
    buf[max + 1] = 0;
    char expect[256];
    snprintf(expect, sizeof expect, "t.yaml:1:1: the job file is %zu bytes; the limit is %zu bytes "
             "(8 MiB - 64 KiB): split it into several jobs", max + 1, max);
    assert_true(s_refused("a file over the size limit", buf, max + 1, expect) < 100.0);
    free(buf);

    char path[512], err[1024], expect2[1024];
    mg_test_temp_write("jobsize", ".yaml", "campaign: c\n", 12, path, sizeof path);
    assert_int_equal(truncate(path, 1LL << 30), 0); /* 1 GiB, sparse */
    mg_job_t *job = NULL;
    double t0 = mg_test_now_ms();
    assert_int_equal(mg_job_parse_file(path, &job, err, sizeof err), -1);
    double dt = mg_test_now_ms() - t0;
    unlink(path);
    snprintf(expect2, sizeof expect2, "%s:1:1: the job file is 1073741824 bytes; the limit is %zu bytes "
             "(8 MiB - 64 KiB): split it into several jobs", path, max);
    assert_string_equal(err, expect2);
    printf("jobspec: a 1 GiB job file refused in %.1f ms\n", dt);
    assert_true(dt < 2000.0); /* 8 MiB read, not 1 GiB */
}

/* Duplicate keys are found by sorting: a mapping of 200,000 keys costs O(n log n) (about 0.2 s),
 * not the 2 * 10^10 comparisons of checking each key against every one before it (about 35 s;
 * 100,000 took 8.6 s). The bound leaves room for sanitizers on a loaded machine. */
static void test_limit_many_keys(void **state)
{
    (void)state;
    size_t cap = 4u << 20, o = 0;
    char *buf = malloc(cap);
    o += (size_t)sprintf(buf + o, "campaign: c\ncues:\n  - name: a\n    prompt: p\n");
    for (int i = 0; i < 200000; i++) o += (size_t)sprintf(buf + o, "    k%d: 1\n", i);
    o += (size_t)sprintf(buf + o, "    k7: 2\n");
    double dt = s_refused("a cue of 200,000 unknown keys", buf, o,
                          "t.yaml:5:5: unknown key 'k0' in a cue (expected one of: name, prompt, emotions, "
                          "duration, variations, seeds, tempo, key, instruments, stems, loop)");
    assert_true(dt < 10000.0);
    /* 1,000,001 nodes: refused at the node that passes the limit. */
    o = (size_t)sprintf(buf, "campaign: c\ncues: [");
    for (int i = 0; i < 1000000; i++) { memcpy(buf + o, "a,", 2); o += 2; }
    o += (size_t)sprintf(buf + o, "a]\n");
    s_refused("1,000,001 nodes", buf, o,
              "t.yaml:2:1999998: more than 1000000 values, lists and mappings; a job file of 100,000 renders "
              "needs about 400,000 (limit: 1000000 nodes; split the file into several jobs)");
    free(buf);
}

/* ---- formats ----------------------------------------------------------------------------------- */

/* output.deliver, loop, loudness normalisation by default, keys from other tools. */
static void test_deliver_and_loop(void **state)
{
    (void)state;
    mg_job_t *job = mg_test_job_parse("campaign: c\ncues:\n  - name: a\n    prompt: p\n");
    assert_int_equal(job->output.deliver, MG_DELIVER_MIX);
    assert_int_equal(job->output.normalize, 1);
    assert_int_equal(job->cues[0].loop, 0);
    assert_null(strstr(job->canonical_json, "deliver")); /* the default keeps old keys */
    mg_job_destroy(&job);
    job = mg_test_job_parse("campaign: c\noutput:\n  deliver: [midi, mix, stems]\n  loudness_lufs: ~\n"
                     "defaults:\n  loop: true\ncues:\n  - name: a\n    prompt: p\n"
                     "  - name: b\n    prompt: p\n    loop: false\n");
    assert_int_equal(job->output.deliver, MG_DELIVER_MIX | MG_DELIVER_STEMS | MG_DELIVER_MIDI);
    assert_int_equal(job->output.normalize, 0);
    assert_int_equal(job->cues[0].loop, 1);
    assert_int_equal(job->cues[1].loop, 0);
    assert_non_null(strstr(job->canonical_json, "\"deliver\":[\"mix\",\"stems\",\"midi\"]"));
    mg_render_spec_t spec, back;
    mg_render_spec_from_job(job, 0, 0, &spec);
    assert_int_equal(spec.loop, 1);
    mg_kv_t kv;
    mg_kv_init(&kv);
    assert_int_equal(mg_render_spec_to_kv(&spec, &kv), 0);
    assert_string_equal(mg_kv_get(&kv, "deliver"), "mix,stems,midi");
    assert_int_equal(mg_render_spec_from_kv(&back, &kv), 0);
    assert_int_equal(back.loop, 1);
    assert_int_equal(back.output.deliver, spec.output.deliver);
    mg_kv_set(&kv, "deliver", "mix,score");
    assert_int_equal(mg_render_spec_from_kv(&back, &kv), -1);
    mg_kv_clear(&kv);
    mg_job_destroy(&job);

    s_parse_bad("campaign: c\noutput:\n  deliver: []\ncues:\n  - name: a\n    prompt: p\n",
                "t.yaml:3:12: 'deliver' must not be empty; use e.g. [mix] or [mix, stems, midi]");
    s_parse_bad("campaign: c\noutput:\n  deliver: [mix, stem]\ncues:\n  - name: a\n    prompt: p\n",
                "t.yaml:3:18: unknown deliverable 'stem' (did you mean 'stems'?)");
    s_parse_bad("campaign: c\noutput:\n  deliver: [mix, midi, mix]\ncues:\n  - name: a\n    prompt: p\n",
                "t.yaml:3:24: deliverable 'mix' is listed twice");
    s_parse_bad("campaign: c\noutput:\n  deliver: mix\ncues:\n  - name: a\n    prompt: p\n",
                "t.yaml:3:12: 'deliver' must be a list, e.g. [mix, stems, midi], got 'mix'");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    loop: yes\n",
                "t.yaml:5:11: 'loop' must be true or false, got 'yes' (write true)");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    loop: 1\n",
                "t.yaml:5:11: 'loop' must be true or false, got '1'");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    bpm: 120\n",
                "t.yaml:5:5: unknown key 'bpm' in a cue (did you mean 'tempo'? beats per minute, e.g. tempo: 120)");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    mood: happy\n",
                "t.yaml:5:5: unknown key 'mood' in a cue (did you mean 'emotions'? a list of tags, e.g. emotions: [joyful, energetic])");
    s_parse_bad("campaign: c\ncues:\n  - name: a\n    prompt: p\n    genre: funk\n",
                "t.yaml:5:5: unknown key 'genre' in a cue (did you mean 'prompt'? name the genre in the prompt, e.g. prompt: \"lo-fi hip hop ...\")");
}

static void test_formats(void **state)
{
    (void)state;
    assert_string_equal(mg_format_name(MG_FORMAT_FLAC), "flac");
    assert_string_equal(mg_format_name(MG_FORMAT_MP3), "mp3");
    assert_string_equal(mg_format_name(MG_FORMAT_WAV), "wav");
    assert_null(mg_format_name(0));
    assert_null(mg_format_name(MG_FORMAT_FLAC | MG_FORMAT_MP3));
    assert_int_equal(mg_format_from_name("flac"), MG_FORMAT_FLAC);
    assert_int_equal(mg_format_from_name("MP3"), MG_FORMAT_MP3);
    assert_int_equal(mg_format_from_name("wav"), MG_FORMAT_WAV);
    assert_int_equal(mg_format_from_name("ogg"), 0);
    assert_int_equal(mg_format_from_name(""), 0);
    assert_int_equal(mg_format_from_name(NULL), 0);
}

/* ---- emotion lexicon ----------------------------------------------------------------------- */

static void test_emotions(void **state)
{
    (void)state;
    size_t n = 0;
    const mg_emotion_t *t = mg_emotion_table(&n);
    assert_true(n >= 30);
    static const char *const required[] = {
        "happy", "joyful", "cheerful", "energetic", "triumphant", "motivational", "inspirational", "calm",
        "relaxing", "peaceful", "tender", "dreamy", "sad", "depressing", "tense", "scary", "fearful",
        "angry", "wonder", "transcendence", "nostalgic", "powerful", "epic", "playful", "romantic",
        "mysterious", "dark", "uplifting", "hopeful", "melancholic", "aggressive", "serene", NULL};
    for (int i = 0; required[i]; i++) {
        const mg_emotion_t *e = mg_emotion_find(required[i]);
        assert_non_null(e);
        assert_string_equal(e->tag, required[i]);
    }
    static const char *const gems[] = {"wonder", "transcendence", "tenderness", "nostalgia", "peacefulness",
                                       "power", "joyful activation", "tension", "sadness", NULL};
    for (size_t i = 0; i < n; i++) {
        assert_true(t[i].valence >= -1 && t[i].valence <= 1);
        assert_true(t[i].arousal >= -1 && t[i].arousal <= 1);
        int known_family = 0;
        for (int g = 0; gems[g]; g++) known_family |= strcmp(gems[g], t[i].family) == 0;
        assert_true(known_family);
        for (const char *p = t[i].tag; *p; p++) assert_true(*p >= 'a' && *p <= 'z');
        for (size_t j = i + 1; j < n; j++) assert_string_not_equal(t[i].tag, t[j].tag);
        assert_ptr_equal(mg_emotion_find(t[i].tag), &t[i]);
    }
    /* Quadrants of the circumplex. */
    assert_true(mg_emotion_find("happy")->valence > 0 && mg_emotion_find("happy")->arousal > 0);
    assert_true(mg_emotion_find("calm")->valence > 0 && mg_emotion_find("calm")->arousal < 0);
    assert_true(mg_emotion_find("sad")->valence < 0 && mg_emotion_find("sad")->arousal < 0);
    assert_true(mg_emotion_find("angry")->valence < 0 && mg_emotion_find("angry")->arousal > 0);
    assert_true(mg_emotion_find("energetic")->arousal > mg_emotion_find("relaxing")->arousal);
    assert_true(mg_emotion_find("joyful")->valence > mg_emotion_find("depressing")->valence);
    /* Case and synonyms. */
    assert_string_equal(mg_emotion_find("JoyFul")->tag, "joyful");
    assert_string_equal(mg_emotion_find("sadness")->tag, "sad");
    assert_string_equal(mg_emotion_find("Tension")->tag, "tense");
    assert_string_equal(mg_emotion_find("peacefulness")->tag, "peaceful");
    assert_string_equal(mg_emotion_find("tenderness")->tag, "tender");
    assert_string_equal(mg_emotion_find("nostalgia")->tag, "nostalgic");
    assert_string_equal(mg_emotion_find("power")->tag, "powerful");
    assert_string_equal(mg_emotion_find("joyful activation")->tag, "joyful");
    assert_string_equal(mg_emotion_find("sad")->family, "sadness");
    assert_string_equal(mg_emotion_find("triumphant")->family, "power");
    assert_null(mg_emotion_find("bogus"));
    assert_null(mg_emotion_find(""));
    assert_null(mg_emotion_find(NULL));
    /* Suggestions. */
    assert_string_equal(mg_emotion_suggest("joyfull"), "joyful");
    assert_string_equal(mg_emotion_suggest("Triumphent"), "triumphant");
    assert_string_equal(mg_emotion_suggest("melancholik"), "melancholic");
    assert_string_equal(mg_emotion_suggest("tensoin"), "tension");
    assert_null(mg_emotion_suggest("xqzvwkjh"));
    assert_null(mg_emotion_suggest(NULL));
}

/* ---- render specs ------------------------------------------------------------------------ */

static void s_fill_spec(mg_render_spec_t *s)
{
    memset(s, 0, sizeof *s);
    s->render_id = 123456789012LL;
    s->job_id = 42;
    strcpy(s->campaign, "summer-sale-2026");
    strcpy(s->client, "Sunny Drinks Ltd");
    strcpy(s->cue, "jingle-30s");
    s->variation = 39;
    s->seed = 18446744073709551615ULL;
    strcpy(s->prompt, "joyful jingle\nwith a \\ backslash and = sign");
    mg_sha256_hex(s->prompt, strlen(s->prompt), s->prompt_sha256);
    strcpy(s->emotions, "joyful,energetic");
    s->duration_s = 29.97;
    s->tempo_bpm = 121.5;
    strcpy(s->key, "F# minor");
    strcpy(s->instruments, "acoustic guitar,claps");
    strcpy(s->stems, "melody,chords,bass,drums");
    s->output = (mg_output_spec_t){.formats = MG_FORMAT_FLAC | MG_FORMAT_WAV, .sample_rate = 44100,
                                   .channels = 1, .mp3_bitrate_kbps = 320, .flac_bits = 24,
                                   .normalize = 1, .loudness_lufs = -23.5};
}

/* to_kv, encode, decode, from_kv. */
static int s_spec_through_wire(const mg_render_spec_t *in, mg_render_spec_t *out)
{
    mg_kv_t kv, back;
    mg_kv_init(&kv);
    mg_kv_init(&back);
    assert_int_equal(mg_render_spec_to_kv(in, &kv), 0);
    size_t len;
    char *text = mg_kv_encode(&kv, &len);
    assert_non_null(text);
    assert_int_equal(mg_kv_decode(&back, text, len), 0);
    int rc = mg_render_spec_from_kv(out, &back);
    free(text);
    mg_kv_clear(&kv);
    mg_kv_clear(&back);
    return rc;
}

static void s_assert_spec_equal(const mg_render_spec_t *a, const mg_render_spec_t *b)
{
    assert_true(a->render_id == b->render_id);
    assert_true(a->job_id == b->job_id);
    assert_string_equal(a->campaign, b->campaign);
    assert_string_equal(a->client, b->client);
    assert_string_equal(a->cue, b->cue);
    assert_int_equal(a->variation, b->variation);
    assert_true(a->seed == b->seed);
    assert_string_equal(a->prompt, b->prompt);
    assert_string_equal(a->prompt_sha256, b->prompt_sha256);
    assert_string_equal(a->emotions, b->emotions);
    assert_true(a->duration_s == b->duration_s);
    assert_true(a->tempo_bpm == b->tempo_bpm);
    assert_string_equal(a->key, b->key);
    assert_string_equal(a->instruments, b->instruments);
    assert_string_equal(a->stems, b->stems);
    assert_int_equal(a->output.formats, b->output.formats);
    assert_int_equal(a->output.sample_rate, b->output.sample_rate);
    assert_int_equal(a->output.channels, b->output.channels);
    assert_int_equal(a->output.mp3_bitrate_kbps, b->output.mp3_bitrate_kbps);
    assert_int_equal(a->output.flac_bits, b->output.flac_bits);
    assert_int_equal(a->output.normalize, b->output.normalize);
    assert_true(a->output.loudness_lufs == b->output.loudness_lufs);
}

static void test_renderspec_roundtrip(void **state)
{
    (void)state;
    mg_render_spec_t in, out;
    s_fill_spec(&in);
    memset(&out, 0x5a, sizeof out);
    assert_int_equal(s_spec_through_wire(&in, &out), 0);
    s_assert_spec_equal(&in, &out);

    /* Full-size fields and the empty optional ones round-trip too. */
    memset(in.prompt, 'p', MG_PROMPT_MAX);
    in.prompt[MG_PROMPT_MAX] = 0;
    memset(in.campaign, 'c', MG_NAME_MAX);
    in.campaign[MG_NAME_MAX] = 0;
    memset(in.instruments, 'i', sizeof in.instruments - 1);
    in.instruments[sizeof in.instruments - 1] = 0;
    in.client[0] = in.key[0] = in.stems[0] = in.emotions[0] = in.prompt_sha256[0] = 0;
    in.tempo_bpm = 0;
    in.seed = 0;
    in.variation = 0;
    in.output = (mg_output_spec_t){.formats = MG_FORMAT_MP3, .sample_rate = 8000, .channels = 2,
                                   .mp3_bitrate_kbps = 32, .flac_bits = 16, .normalize = 0,
                                   .loudness_lufs = -14};
    assert_int_equal(s_spec_through_wire(&in, &out), 0);
    s_assert_spec_equal(&in, &out);

    /* The kv record holds the documented keys. */
    mg_kv_t kv;
    mg_kv_init(&kv);
    s_fill_spec(&in);
    assert_int_equal(mg_render_spec_to_kv(&in, &kv), 0);
    assert_string_equal(mg_kv_get(&kv, "formats"), "flac,wav");
    assert_string_equal(mg_kv_get(&kv, "seed"), "18446744073709551615");
    assert_string_equal(mg_kv_get(&kv, "cue"), "jingle-30s");
    assert_string_equal(mg_kv_get(&kv, "flac_bits"), "24");
    mg_kv_clear(&kv);
}

/* Each case: one field replaced (or removed, value NULL) in a valid record. */
static void test_renderspec_rejects(void **state)
{
    (void)state;
    char long_prompt[MG_PROMPT_MAX + 2], long_name[MG_NAME_MAX + 2], long_key[40], long_stems[300];
    memset(long_prompt, 'p', sizeof long_prompt - 1);
    long_prompt[sizeof long_prompt - 1] = 0;
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = 0;
    memset(long_stems, 's', sizeof long_stems - 1);
    long_stems[sizeof long_stems - 1] = 0;
    const struct { const char *key, *value; } cases[] = {
        {"prompt", long_prompt}, {"campaign", long_name}, {"client", long_name}, {"cue", long_name},
        {"key", long_key}, {"stems", long_stems}, {"prompt", ""}, {"campaign", ""}, {"cue", NULL},
        {"render_id", NULL}, {"render_id", "12x"}, {"render_id", ""}, {"render_id", "-1"},
        {"job_id", "99999999999999999999"}, {"variation", "1000"}, {"variation", "-1"},
        {"seed", "-1"}, {"seed", "18446744073709551616"}, {"seed", "1.5"}, {"seed", NULL},
        {"duration_s", "0"}, {"duration_s", "600.5"}, {"duration_s", "nan"}, {"duration_s", "inf"},
        {"duration_s", NULL}, {"tempo_bpm", "10"}, {"tempo_bpm", "301"}, {"formats", ""},
        {"formats", "ogg"}, {"formats", "flac,flac"}, {"formats", "flac,"}, {"formats", NULL},
        {"sample_rate", "7999"}, {"sample_rate", "48000.0"}, {"channels", "3"}, {"channels", "0"},
        {"mp3_bitrate", "321"}, {"flac_bits", "20"}, {"normalize", "2"}, {"loudness_lufs", "1"},
        {"loudness_lufs", "-71"}, {"prompt_sha256", "abc"}, {"prompt_sha256", long_key},
    };
    mg_render_spec_t in, out;
    s_fill_spec(&in);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mg_kv_t kv, edited;
        mg_kv_init(&kv);
        mg_kv_init(&edited);
        assert_int_equal(mg_render_spec_to_kv(&in, &kv), 0);
        for (size_t k = 0; k < kv.n; k++) {
            if (strcmp(kv.pairs[k].key, cases[i].key) == 0) {
                if (cases[i].value) mg_kv_set(&edited, kv.pairs[k].key, cases[i].value);
            } else {
                mg_kv_set(&edited, kv.pairs[k].key, kv.pairs[k].value);
            }
        }
        memset(&out, 0x5a, sizeof out);
        int rc = mg_render_spec_from_kv(&out, &edited);
        if (rc != -1) fprintf(stderr, "accepted %s=%s\n", cases[i].key, cases[i].value ? cases[i].value : "(missing)");
        assert_int_equal(rc, -1);
        assert_int_equal(out.campaign[0], 0); /* nothing half-filled */
        assert_true(out.render_id == 0);
        mg_kv_clear(&kv);
        mg_kv_clear(&edited);
    }
    /* Optional fields may be left out. */
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set(&kv, "render_id", "1");
    mg_kv_set(&kv, "job_id", "2");
    mg_kv_set(&kv, "campaign", "c");
    mg_kv_set(&kv, "cue", "q");
    mg_kv_set(&kv, "variation", "0");
    mg_kv_set(&kv, "seed", "7");
    mg_kv_set(&kv, "prompt", "p");
    mg_kv_set(&kv, "duration_s", "1.5");
    mg_kv_set(&kv, "formats", "mp3");
    mg_kv_set(&kv, "sample_rate", "22050");
    mg_kv_set(&kv, "channels", "1");
    assert_int_equal(mg_render_spec_from_kv(&out, &kv), 0);
    assert_int_equal(out.output.mp3_bitrate_kbps, 192);
    assert_int_equal(out.output.flac_bits, 16);
    assert_int_equal(out.output.normalize, 0);
    assert_true(out.output.loudness_lufs == -14.0);
    assert_string_equal(out.key, "");
    assert_true(out.seed == 7);
    mg_kv_clear(&kv);
}

/* Specs built from a parsed job fit the fixed fields (the job limits match the spec). */
static void test_job_to_spec_fits(void **state)
{
    (void)state;
    char err[1024];
    mg_job_t *job = NULL;
    assert_int_equal(mg_job_parse_file(mg_test_path("jobs/ad-campaign.yaml"), &job, err, sizeof err), 0);
    for (int c = 0; c < job->n_cues; c++) {
        const mg_cue_t *q = &job->cues[c];
        mg_render_spec_t s, back;
        memset(&s, 0, sizeof s);
        assert_int_equal(mg_strlcpy(s.campaign, job->campaign, sizeof s.campaign), 0);
        assert_int_equal(mg_strlcpy(s.cue, q->name, sizeof s.cue), 0);
        assert_int_equal(mg_strlcpy(s.prompt, q->prompt, sizeof s.prompt), 0);
        for (int e = 0; e < q->n_emotions; e++) {
            if (e) strcat(s.emotions, ",");
            strcat(s.emotions, q->emotions[e]);
        }
        s.variation = q->variations - 1;
        s.seed = q->seeds[q->variations - 1];
        s.duration_s = q->duration_s;
        s.tempo_bpm = q->tempo_bpm;
        if (q->key) mg_strlcpy(s.key, q->key, sizeof s.key);
        s.output = job->output;
        assert_int_equal(s_spec_through_wire(&s, &back), 0);
        s_assert_spec_equal(&s, &back);
    }
    mg_job_destroy(&job);
}

/* ---- kv records ---------------------------------------------------------------------------- */

static void test_kv_roundtrip(void **state)
{
    (void)state;
    mg_kv_t kv, back;
    mg_kv_init(&kv);
    mg_kv_init(&back);
    const char *tricky = "line one\nline two\\n not a newline\\\\ and \\ =x=\n\n";
    assert_int_equal(mg_kv_set(&kv, "text", tricky), 0);
    assert_int_equal(mg_kv_set(&kv, "empty", ""), 0);
    assert_int_equal(mg_kv_set_u64(&kv, "big", UINT64_MAX), 0);
    assert_int_equal(mg_kv_set_i64(&kv, "neg", INT64_MIN), 0);
    assert_int_equal(mg_kv_set_double(&kv, "d", 0.1), 0);
    assert_int_equal(mg_kv_set(&kv, "bad key", "x"), -1);
    size_t len;
    char *text = mg_kv_encode(&kv, &len);
    assert_string_equal(text, "text=line one\\nline two\\\\n not a newline\\\\\\\\ and \\\\ =x=\\n\\n\n"
                              "empty=\nbig=18446744073709551615\nneg=-9223372036854775808\nd=0.10000000000000001\n");
    assert_int_equal(mg_kv_decode(&back, text, len), 0);
    assert_int_equal(back.n, 5);
    assert_string_equal(mg_kv_get(&back, "text"), tricky);
    assert_string_equal(mg_kv_get(&back, "empty"), "");
    assert_true(mg_kv_get_u64(&back, "big", 0) == UINT64_MAX);
    assert_true(mg_kv_get_i64(&back, "neg", 0) == INT64_MIN);
    assert_true(mg_kv_get_double(&back, "d", 0) == 0.1);
    assert_string_equal(back.pairs[0].key, "text"); /* order kept */
    free(text);
    assert_int_equal(mg_kv_decode(&back, "novalue\n", 8), -1);
    assert_int_equal(back.n, 0);
    assert_int_equal(mg_kv_decode(&back, "k=bad\\escape\n", 13), -1);
    assert_int_equal(mg_kv_decode(&back, "k=trailing\\", 11), -1);
    assert_int_equal(mg_kv_decode(&back, "k=last line", 11), 0);
    assert_string_equal(mg_kv_get(&back, "k"), "last line");
    mg_kv_clear(&kv);
    mg_kv_clear(&back);
}

/* A frame of many keys costs what its bytes cost: repeated keys are merged after one sort (the
 * first one's place, the last one's value, as mg_kv_set does), not by a search per line. */
static void test_kv_many_keys(void **state)
{
    (void)state;
    mg_kv_t kv;
    mg_kv_init(&kv);
    assert_int_equal(mg_kv_decode(&kv, "a=1\nb=2\na=3\nc=4\nb=5\na=6\n", 24), 0);
    assert_int_equal(kv.n, 3);
    assert_string_equal(kv.pairs[0].key, "a");
    assert_string_equal(kv.pairs[0].value, "6");
    assert_string_equal(kv.pairs[1].key, "b");
    assert_string_equal(kv.pairs[1].value, "5");
    assert_string_equal(kv.pairs[2].key, "c");
    size_t cap = 8u << 20, o = 0;
    char *buf = malloc(cap);
    for (int i = 0; o + 32 < cap; i++) o += (size_t)sprintf(buf + o, "k%d=%d\n", i, i);
    double t0 = mg_test_now_ms();
    assert_int_equal(mg_kv_decode(&kv, buf, o), 0);
    double dt = mg_test_now_ms() - t0;
    printf("kv: decode an 8 MiB frame of %zu distinct keys: %.1f ms (a search per line made it quadratic: minutes)\n", kv.n, dt);
    assert_string_equal(mg_kv_get(&kv, "k12345"), "12345");
    assert_true(dt < 10000.0); /* about 0.4 s; quadratic, it was minutes */
    mg_kv_clear(&kv);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_more_errors),
        cmocka_unit_test(test_empty_mappings),
        cmocka_unit_test(test_error_buffer_truncation),
        cmocka_unit_test(test_example_jobs),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_seed_derive),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_parse_10k_renders),
        cmocka_unit_test(test_limit_nesting),
        cmocka_unit_test(test_limit_alias_bomb),
        cmocka_unit_test(test_limit_size),
        cmocka_unit_test(test_limit_many_keys),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_deliver_and_loop),
        cmocka_unit_test(test_emotions),
        cmocka_unit_test(test_renderspec_roundtrip),
        cmocka_unit_test(test_renderspec_rejects),
        cmocka_unit_test(test_job_to_spec_fits),
        cmocka_unit_test(test_kv_roundtrip),
        cmocka_unit_test(test_kv_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

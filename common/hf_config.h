/* hf_config.h - configuration files for the daemons (ZPL, czmq's zconfig).
 *
 * A daemon's configuration file is ZPL (rfc.zeromq.org/spec/4): one section
 * named after the program, one key per option, the key being the option's
 * long name without the dashes:
 *
 *     holdfast-aggregator
 *         bind = tcp://0.0.0.0:5555
 *         watchdog-ms = 3000
 *         insecure = false
 *
 * Every option is also a command-line flag, and the flag wins: the file is
 * turned into "--name=value" arguments placed BEFORE the command line's,
 * and getopt lets a later occurrence override an earlier one. So a daemon
 * validates its file with the very code that validates its flags; this
 * module only adds what a file can get wrong that a command line can't:
 * unknown keys, a flag without a value given a value, and the syntax. Every
 * error names the file and the line.
 *
 * The ZPL text is parsed by zconfig; zconfig keeps no line numbers, so the
 * line of a key is found by reading the file alongside (the key at its
 * indentation under the section).
 */
#ifndef HF_CONFIG_H_INCLUDED
#define HF_CONFIG_H_INCLUDED

#include <getopt.h>
#include <stddef.h>

#include "hf_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_CONFIG_MAX_ARGS 128 /* options a file may set */

/* The file as extra arguments. Owns the strings. */
typedef struct {
    int argc;
    char *argv[HF_CONFIG_MAX_ARGS];
} hf_config_args_t;

/* Read path, take section `program`, and turn each key into "--key=value"
 * (a no_argument option: "--key" when the value is true/yes/1/on, nothing
 * when false/no/0/off). opts is the program's getopt_long table; keys not
 * in it, or only settable on the command line (skip: NULL-terminated list
 * of names, e.g. "config", "help"), are errors. HF_OK; HF_ENOTFOUND (no
 * such file), HF_EINVAL (errbuf: "FILE:LINE: reason"), HF_ENOMEM. */
HF_EXPORT hf_err_t hf_config_load(const char *path, const char *program,
                                  const struct option *opts, const char *const *skip,
                                  hf_config_args_t *out, char *errbuf, size_t errlen);

/* The same over text already in memory (len bytes, not necessarily
 * NUL-terminated); name stands for the file in messages. */
HF_EXPORT hf_err_t hf_config_parse(const char *name, const char *text, size_t len,
                                   const char *program, const struct option *opts,
                                   const char *const *skip, hf_config_args_t *out, char *errbuf,
                                   size_t errlen);

/* Free the strings; NULL-safe. */
HF_EXPORT void hf_config_args_free(hf_config_args_t *args);

/* argv with the file's arguments inserted after argv[0]: *argc_out and a
 * NULL-terminated array (malloc'd; its strings are borrowed from both
 * inputs). NULL on ENOMEM. */
HF_EXPORT char **hf_config_merge(int argc, char **argv, const hf_config_args_t *file,
                                 int *argc_out);

/* Find "--config FILE" / "--config=FILE" in argv (before getopt runs):
 * the path or NULL. */
HF_EXPORT const char *hf_config_path(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif

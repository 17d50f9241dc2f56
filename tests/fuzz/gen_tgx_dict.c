/* gen_tgx_dict.c: prints a libFuzzer dictionary entry "NAME(" for every tgx function, read
 * from the language itself (tg_expr_function, which reads the op table), so the fuzzer's
 * dictionary follows the op set with no list to keep. tests/fuzz/run.sh appends its output
 * to tgx.dict. */
#include <tapegrad.h>

#include <stdio.h>

int main(void)
{
    const char *name;
    for (size_t i = 0; (name = tg_expr_function(i)) != NULL; i++)
        printf("\"%s(\"\n", name);
    return ferror(stdout) ? 1 : 0;
}

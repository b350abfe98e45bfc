/* no_symbol.c - a shared object that exports no descriptor at all. */
#include <sparkplane/sparkplane.h>

int no_symbol_answer(void);
int no_symbol_answer(void)
{
    return 42;
}

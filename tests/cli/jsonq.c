/*
 * jsonq - read JSON objects, one per line, and print fields of each.
 *
 *   usage: jsonq KEY...
 *
 * For every line of stdin, prints the values of the KEYs separated by
 * tabs: strings as they are, numbers as integers when they are whole,
 * true/false/null as such, "<missing>" for an absent key. Exits 1 when a
 * line is not a JSON object, so the tests notice output that only looks
 * right. Built with cJSON, so the tests need nothing else.
 */
#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_value(const cJSON *v)
{
    if (!v)
        fputs("<missing>", stdout);
    else if (cJSON_IsString(v))
        fputs(v->valuestring, stdout);
    else if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble))
        printf("%.0f", v->valuedouble);
    else if (cJSON_IsNumber(v))
        printf("%g", v->valuedouble);
    else if (cJSON_IsBool(v))
        fputs(cJSON_IsTrue(v) ? "true" : "false", stdout);
    else if (cJSON_IsNull(v))
        fputs("null", stdout);
    else
        fputs("<complex>", stdout);
}

int main(int argc, char **argv)
{
    char *line = NULL;
    size_t capacity = 0;
    long number = 0;
    int status = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: jsonq KEY...\n");
        return 2;
    }
    while (getline(&line, &capacity, stdin) != -1) {
        cJSON *obj = cJSON_Parse(line);
        number++;
        if (!cJSON_IsObject(obj)) {
            fprintf(stderr, "jsonq: line %ld is not a JSON object: %s", number, line);
            status = 1;
            cJSON_Delete(obj);
            continue;
        }
        for (int i = 1; i < argc; i++) {
            if (i > 1)
                putchar('\t');
            print_value(cJSON_GetObjectItemCaseSensitive(obj, argv[i]));
        }
        putchar('\n');
        cJSON_Delete(obj);
    }
    free(line);
    return status;
}

# Counts the words of its input files (or stdin) and prints the five most
# frequent: an awk program run by prisn through the awk runner beside it.
{
  for (i = 1; i <= NF; i++) count[tolower($i)]++
}
END {
  for (w in count) print count[w], w | "sort -k1,1nr -k2 | head -n 5"
}

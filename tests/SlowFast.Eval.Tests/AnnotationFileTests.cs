using Parquet.Serialization;
using SlowFast.Eval.Data;

namespace SlowFast.Eval.Tests;

public sealed class AnnotationFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sf-annot-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Json_array_and_keyed_object_give_the_same_fields()
    {
        var array = AnnotationFile.Read(Write("a.json", """[{"id": 7, "q": "why?", "options": ["x", "y"]}]"""));
        var keyed = AnnotationFile.Read(Write("b.json", """{"clip1": {"q": "why?", "options": ["x", "y"]}}"""));
        Assert.Equal("7", array[0].String("id"));
        Assert.Equal(["x", "y"], array[0].StringList("options"));
        Assert.Equal("clip1", keyed[0].String("_key"));
        Assert.Equal("why?", keyed[0].String("q"));
    }

    [Fact]
    public void Json_lines_skip_blank_lines_and_name_the_bad_one()
    {
        var rows = AnnotationFile.Read(Write("a.jsonl", "{\"a\": 1}\n\n{\"a\": 2.5}\n"));
        Assert.Equal(2, rows.Count);
        Assert.Equal(2.5, rows[1].NumberOrNull("a"));
        var e = Assert.Throws<UserError>(() => AnnotationFile.Read(Write("b.jsonl", "{\"a\": 1}\n{oops\n")));
        Assert.Contains("line 2", e.Message);
    }

    [Fact]
    public void Csv_and_tsv_read_quoted_fields_and_lists_stored_as_text()
    {
        var csv = AnnotationFile.Read(Write("a.csv", "video,question,candidates\nv1.mp4,\"Is it, really?\",\"[\"\"a\"\", \"\"b\"\"]\"\n"));
        Assert.Equal("Is it, really?", csv[0].String("question"));
        Assert.Equal(["a", "b"], csv[0].StringList("candidates"));
        var tsv = AnnotationFile.Read(Write("a.tsv", "video\tanswer\nv2.mp4\t3\n"));
        Assert.Equal("3", tsv[0].String("answer"));
    }

    [Fact]
    public async Task Parquet_rows_keep_lists_and_numbers()
    {
        // Written with Parquet.Net's class serializer: a list<string> column, as Hugging Face datasets store options.
        var path = Path.Combine(_dir, "test.parquet");
        await using (var stream = File.Create(path))
            await ParquetSerializer.SerializeAsync([new ParquetRecord { question_id = "001-1", duration = 42, options = ["A. red", "B. blue"] }], stream);

        var rows = AnnotationFile.Read(path);
        Assert.Single(rows);
        Assert.Equal("001-1", rows[0].String("question_id"));
        Assert.Equal(42, rows[0].NumberOrNull("duration"));
        Assert.Equal(["A. red", "B. blue"], rows[0].StringList("options"));
    }

    [Fact]
    public void Bad_files_are_one_line_user_errors()
    {
        Assert.Contains("not found", Assert.Throws<UserError>(() => AnnotationFile.Read(Path.Combine(_dir, "none.json"))).Message);
        Assert.Contains("not valid JSON", Assert.Throws<UserError>(() => AnnotationFile.Read(Write("bad.json", "[{"))).Message);
        Assert.Contains("not valid JSON", Assert.Throws<UserError>(() => AnnotationFile.Read(Write("twice.json", """[{"a": 1, "a": 2}]"""))).Message);
        Assert.Contains("line 1", Assert.Throws<UserError>(() => AnnotationFile.Read(Write("twice.jsonl", """{"a": 1, "a": 2}"""))).Message);
        Assert.Contains("unknown annotation format", Assert.Throws<UserError>(() => AnnotationFile.Read(Write("a.xml", "<a/>"))).Message);
        Assert.Contains("cannot read", Assert.Throws<UserError>(() => AnnotationFile.Read(Write("bad.parquet", "PAR1 not really"))).Message);
        var row = AnnotationFile.Read(Write("c.json", """[{"a": "x"}]"""))[0];
        Assert.Contains("no 'b' field", Assert.Throws<UserError>(() => row.String("b")).Message);
        Assert.Contains("not a list", Assert.Throws<UserError>(() => row.StringList("a")).Message);
    }

    [Fact]
    public void Find_takes_the_first_existing_name_and_lists_what_it_tried()
    {
        Write("test.parquet", "x");
        Write("test.json", "[]");
        Assert.EndsWith("test.json", AnnotationFile.Find(_dir, "videomme/test", "test"));
        var e = Assert.Throws<UserError>(() => AnnotationFile.Find(_dir, "missing"));
        Assert.Contains("missing.jsonl", e.Message);
    }
}

#pragma warning disable IDE1006 // field names as the benchmark files spell them
public sealed class ParquetRecord
{
    public string question_id { get; set; } = "";
    public long duration { get; set; }
    public List<string> options { get; set; } = [];
}

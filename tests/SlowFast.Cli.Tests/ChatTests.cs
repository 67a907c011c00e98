using System.Diagnostics;
using System.Text.Json.Nodes;

namespace SlowFast.Cli.Tests;

/// <summary>`slowfast chat` end to end: questions on stdin, a tiny checkpoint, the real program.</summary>
public partial class ChatTests(TinyModelFixture tiny) : IClassFixture<TinyModelFixture>
{
    private const int SigInt = 2;

    [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    private string[] Args(params string[] extra) =>
        ["chat", "--model", tiny.ModelDir, "--video", tiny.Clip(), "--frames", "8", "--max-new-tokens", "8", .. extra];

    private static JsonNode[] Turns(SlowfastProcess.Result r) =>
        r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToArray();

    [Fact]
    public void Each_line_is_a_turn_that_continues_the_conversation_and_reset_forgets_it()
    {
        // The second question spans three lines between triple quotes, as a pasted one would.
        var r = SlowfastProcess.RunWithInput("What happens?\n\n\"\"\"And then,\n  in the end?\nSay it briefly.\"\"\"\n/reset\nWhat happens?\n", Args("--json"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var turns = Turns(r);
        Assert.Equal(3, turns.Length);   // the empty line is no question
        Assert.Equal([1, 2, 3], turns.Select(t => (int)t["turn"]!));
        Assert.Equal("And then,\n  in the end?\nSay it briefly.", (string?)turns[1]["question"]);
        int Tokens(int turn, string what) => (int)turns[turn]["tokens"]![what]!;

        // The second turn is the whole conversation: the first prompt, the first answer, the new question...
        Assert.Equal(0, Tokens(0, "reused"));
        Assert.True(Tokens(1, "prompt") > Tokens(0, "prompt") + Tokens(0, "generated"), r.Stdout);
        // ...whose first prompt comes from the prefix cache (the answer reruns as prompt text, which in the
        // hybrid layers attends to the slow tokens, unlike the decoding that wrote it).
        Assert.Equal(Tokens(0, "prompt"), Tokens(1, "reused"));

        // After /reset the same question is a first turn again: the same prompt and the same (greedy) answer.
        Assert.Equal(Tokens(0, "prompt"), Tokens(2, "prompt"));
        Assert.Equal((string?)turns[0]["answer"], (string?)turns[2]["answer"]);
        Assert.Contains("conversation forgotten", r.Stderr);

        // A chat answers many questions a load, so it packs the decoder as serve does (tiny's float32
        // matrices are declined, with the reason); --no-packed-decoder keeps them as stored.
        if ((string?)turns[0]["precision"] == "bf16")
            Assert.Contains("decoder matrices not packed: the decoder's matrices are not stored as BF16", r.Stderr);
        var stored = SlowfastProcess.RunWithInput("What happens?\n", Args("--json", "--no-packed-decoder"));
        Assert.True(stored.ExitCode == 0, stored.Stderr);
        Assert.Contains("(decoder matrices as stored)", stored.Stderr);
        Assert.Equal((string?)turns[0]["answer"], (string?)Turns(stored)[0]["answer"]);

        // A chat's first turn is what `ask` answers to the same question.
        var ask = SlowfastProcess.Run("ask", "--model", tiny.ModelDir, "--video", tiny.Clip(), "--frames", "8", "--max-new-tokens", "8", "--json", "What happens?");
        Assert.True(ask.ExitCode == 0, ask.Stderr);
        Assert.Equal((string?)JsonNode.Parse(ask.Stdout)!["answer"], (string?)turns[0]["answer"]);
    }

    [Fact]
    public void A_follow_up_reuses_the_answer_too_where_decoding_ran_it_as_the_prompt_runs_it()
    {
        // Text only (no position reads the slow tokens), and about a video with --attend-while-decoding
        // (the answer read them as it was decoded, as the follow-up's prompt text does).
        string[][] chats =
        [
            ["chat", "--model", tiny.ModelDir, "--max-new-tokens", "8", "--json"],
            Args("--json", "--attend-while-decoding"),
        ];
        foreach (var args in chats)
        {
            var r = SlowfastProcess.RunWithInput("What happens?\nAnd then?\n", args);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var turns = Turns(r);
            int Tokens(int turn, string what) => (int)turns[turn]["tokens"]![what]!;
            // Beyond the first prompt, up to the answer's tokens that ran (all but the last one sampled)
            // and that its text gives back when the conversation is tokenized again.
            Assert.InRange(Tokens(1, "reused"), Tokens(0, "prompt") + 1, Tokens(0, "prompt") + Tokens(0, "generated") - 1);
        }
    }

    [Fact]
    public void Answers_stream_to_stdout_and_each_turn_is_reported_on_stderr()
    {
        var json = Turns(SlowfastProcess.RunWithInput("What happens?\nAnd then?\n", Args("--json")));
        var r = SlowfastProcess.RunWithInput("What happens?\nAnd then?\n/bye\nNever asked.\n", Args());
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal($"{json[0]["answer"]}\n{json[1]["answer"]}\n", r.Stdout);   // /bye ends the chat
        Assert.Contains("vision", r.Stderr);
        Assert.Contains($"turn 2    prefill {(int)json[1]["tokens"]!["prompt"]! - (int)json[1]["tokens"]!["reused"]!} position(s) " +
            $"({(int)json[1]["tokens"]!["reused"]!} reused)", r.Stderr);
        Assert.DoesNotContain("turn 3", r.Stderr);
        Assert.DoesNotContain(">>>", r.Stderr);   // no prompt when stdin is not a terminal
    }

    [Fact]
    public void From_a_pipe_the_first_error_ends_the_chat()
    {
        // tiny's context is 4,096 positions: this question alone is longer.
        string tooLong = string.Join(' ', Enumerable.Repeat("word", 5000));
        var r = SlowfastProcess.RunWithInput($"What happens?\n{tooLong}\nAnd then?\n", Args("--json"));
        Assert.Equal(1, r.ExitCode);
        Assert.Single(Turns(r));
        Assert.Contains("slowfast chat: error: ", r.Stderr);
        Assert.Contains("context", r.Stderr);

        var unknown = SlowfastProcess.RunWithInput("/nonsense\nWhat happens?\n", Args());
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("unknown command '/nonsense'", unknown.Stderr);
        Assert.Equal("", unknown.Stdout);

        // Usage mistakes are refused before a model is loaded.
        var usage = SlowfastProcess.RunWithInput("What happens?\n", "chat", "--model", tiny.ModelDir, "--frames", "8");
        Assert.Equal(2, usage.ExitCode);
        Assert.Contains("--frames applies to --video only", usage.Stderr);
        Assert.DoesNotContain("loaded", usage.Stderr);
    }

    [Fact]
    public void Ctrl_C_stops_the_answer_being_written_and_drops_that_turn()
    {
        // A long greedy answer (the tiny model's random weights do not end it early), interrupted once it streams.
        // Started through env, which gives SIGINT its default action: a test run started in the background
        // (`cmd &` in a script) inherits SIGINT ignored, and .NET then leaves it ignored, as a program should.
        var psi = SlowfastProcess.StartInfo(["chat", "--model", tiny.ModelDir, "--video", tiny.Clip(), "--frames", "8", "--max-new-tokens", "3000"]);
        psi.ArgumentList.Insert(0, psi.FileName);
        psi.ArgumentList.Insert(0, "--default-signal=INT");
        psi.FileName = "env";
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            p.StandardInput.WriteLine("What happens?");
            p.StandardInput.Flush();
            var first = new char[1];
            Assert.Equal(1, p.StandardOutput.Read(first, 0, 1));   // the answer has started
            Assert.Equal(0, kill(p.Id, SigInt));

            // The chat goes on, and the stopped turn is not part of it: the same question again is turn 1, whose
            // prompt is all in the prefix cache but for its last position (which always runs, for its logits).
            p.StandardInput.WriteLine("What happens?");
            p.StandardInput.Close();
            p.StandardOutput.ReadToEnd();
            Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)), "chat did not end after its input did");
            string err = stderr.Result;
            Assert.True(p.ExitCode == 0, err);
            Assert.True(err.Contains("answer stopped; this turn is not kept"), err);
            var turn = System.Text.RegularExpressions.Regex.Match(err, @"turn (\d+) +prefill (\d+) position\(s\) \((\d+) reused\)");
            Assert.True(turn.Success, err);
            Assert.Equal("1", turn.Groups[1].Value);
            Assert.Equal("1", turn.Groups[2].Value);
            Assert.Single(System.Text.RegularExpressions.Regex.Matches(err, "turn \\d"));
        }
        finally
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
        }
    }
}
